import ArgumentParser
import Comm
import Foundation
import Reports
import Trainer
import VGGEngine
import Vocabulary

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train (or benchmark forward / forward-backward) on every rank; the default command.")

    @OptionGroup var options: RunOptions
    @Option(help: "Write the run's report as JSON to this file (rank 0).")
    var report: String?
    @Option(help: "Append one summary row to this CSV file (header if new).")
    var csv: String?
    @Option(help: "Write a timeline in Chrome trace format (Perfetto, chrome://tracing) to this file.")
    var trace: String?
    @Flag(help: "Skip the sgemm peak probe at start (no % of peak in the report).")
    var noPeakProbe = false
    @Option(help: "The launcher's restart log (scripts/launch.sh --max-restarts passes it): the report lists its restarts.")
    var restartLog: String?

    func run() throws {
        let started = ISO8601DateFormatter().string(from: Date())
        try withWorld { world in
            var restarts: [Restart]?
            var config = try options.config(ranks: world.size)
            config.peakProbe = !noPeakProbe
            config.recordTimeline = trace != nil
            let checkpointFile = config.checkpointDir.map { URL(fileURLWithPath: $0).appendingPathComponent(Checkpoint.fileName).path }
            try checkOnRoot(world) {
                // A file where the checkpoint folder should be is named as such, before the paths are compared.
                if let dir = config.checkpointDir { try refuseFile(at: dir, flag: "--checkpoint-dir") }
                try checkDistinctOutputs([("--report", report), ("--trace", trace), ("--csv", csv),
                                          ("--checkpoint-dir", config.checkpointDir), ("--checkpoint-dir", checkpointFile)])
                try checkWritable(report, flag: "--report")
                if let csv { try RunReport.checkCSVAppendable(csv) }
                try checkWritable(trace, flag: "--trace")
                if let dir = config.checkpointDir { try checkFolder(dir, flag: "--checkpoint-dir", writable: true) }
                if let dir = config.resumeDir { try checkFolder(dir, flag: "--resume", writable: false) }
                if let log = restartLog { restarts = try Restart.readLog(log) }
                removeOrphanedTemporaries([report, trace, csv, checkpointFile].compactMap { $0 }.map(canonicalPath))
            }
            if world.isRoot, let k = config.checkpointEvery, k > config.warmup + config.steps {
                FileHandle.standardError.write(Data("""
                    vgg-dp: warning: --checkpoint-every \(k) is more than this run's \(config.warmup + config.steps) steps \
                    (warm-up included): no checkpoint will be written\n
                    """.utf8))
            }
            let threads = blasThreads(requested: options.threads, world: world)
            try options.resolveExchange(&config, world: world, threads: threads)
            let plan = BucketPlan(spec: config.network, bucketMB: config.bucketMB)
            if world.isRoot {
                printOut(layout(config, world: world, threads: threads, plan: plan))
                if let advice = BLASKernel.advice { printOut(advice) }
            }

            let trainer = try DataParallelTrainer(config: config, group: world, blasThreads: threads)
            do {
                try train(trainer, config: config, world: world, started: started, restarts: restarts)
            } catch {
                trainer.shutdown()
                throw error
            }
        }
    }

    /// Trains; rank 0 reports (with the launcher's `restarts`, which only rank 0 has read).
    func train(_ trainer: DataParallelTrainer, config: TrainConfig, world: World, started: String,
               restarts: [Restart]?) throws {
        if let dir = config.resumeDir {
            try trainer.resume(from: dir)
            if world.isRoot { printOut("resumed from \(dir) at step \(trainer.startStep)") }
        }
        // Everything the signal path needs is computed now: it has about a second.
        let environment = trainer.environment
        let signals = StopSignals(trainer: trainer, world: world) { snapshot, signal in
            // mpirun follows SIGINT/SIGTERM with SIGKILL about a second
            // later: rank 0 writes what it has, marked incomplete, now.
            guard let path = report else { return }
            let partial = RunReport.make(config: config, plan: trainer.plan, ranks: [snapshot], environment: environment,
                                         checksum: 0, command: CommandLine.arguments, startedAt: started, complete: false,
                                         rankCount: world.size, restarts: restarts)
            var marked = partial
            marked.note = "stopped by signal \(signal) after \(snapshot.steps.count) timed steps; timings of rank 0 only; no checksum"
            try? marked.write(to: path)
        }
        defer { signals.cancel() }
        if world.isRoot && world.size > 1 && config.mode.hasBackward {
            printOut("communication: " + trainer.exchangeDescription)
        }
        let total = config.steps
        let checksum = try trainer.run { step, times in
            if world.isRoot {
                let eta = Double(total - step - 1) * times.wall
                printOut(Text.progress(step: step, seconds: times.wall) + "  (\(step + 1)/\(total), ETA \(Text.duration(eta)))")
            }
        }
        let gathered = try trainer.gatherTimings()
        trainer.shutdown()
        guard let ranks = gathered else { return }
        let result = RunReport.make(config: config, plan: trainer.plan, ranks: ranks, environment: environment,
                                    checksum: checksum, command: CommandLine.arguments, startedAt: started,
                                    restarts: restarts)
        printOut(result.closingLines)
        printOut("\nper rank (ms per step):\n" + result.rankTable)
        printOut("\nper layer (rank mean, ms per step):\n" + result.layerTable)
        printOut("\noutside sgemm: \(Text.fixed(100 * result.nonGemmShare, 1))% of forward+backward layer time")
        printOut("parameter checksum: \(result.parameterChecksum) (identical on all \(world.size) rank(s))")
        for r in result.restarts ?? [] { printOut(r.line) }
        if let skipped = result.skippedSteps, skipped > 0 {
            printOut("skipped updates (non-finite gradients): \(skipped)")
        }
        if let r = result.perRank.first, let a = r.rssAtStep100Bytes, let b = r.rssAtEndBytes {
            printOut("resident memory, rank 0: \(a / 1_048_576) MiB at step 100, \(b / 1_048_576) MiB at the end")
        }
        if let line = memoryLine(result) { printOut(line) }
        if let line = result.compressionLine { printOut(line) }
        if let path = report {
            try result.write(to: path)
            printOut("report: \(path)")
        }
        if let path = csv {
            try result.appendCSV(to: path)
            printOut("csv: \(path)")
        }
        if let path = trace {
            let data = try Timeline.chromeTrace(
                ranks: ranks, hosts: world.hostNames, layerNames: config.network.layers.map(\.name),
                bucketNames: trainer.plan.buckets.enumerated().map { "allreduce bucket \($0.offset) (\(Text.fixed(Double($0.element.bytes) / 1_048_576, 1)) MiB)" },
                title: "vgg-dp \(config.network.model.rawValue) \(config.mode.rawValue) \(world.size) ranks")
            try writeAtomically(data, to: path)
            printOut("trace: \(path)")
        }
    }

    /// "memory: exchange host-shared, 1,106 MiB shared per host; per rank ..." (MiB = 2^20 bytes).
    func memoryLine(_ r: RunReport) -> String? {
        guard let first = r.perRank.first, let own = first.privateBytes else { return nil }
        let mib = { (b: Int) in Text.fixed(Double(b) / 1_048_576, 1) }
        var parts = ["memory: exchange \(r.exchange?.rawValue ?? "none")"]
        if let s = r.sharedBytesPerHost { parts.append("\(mib(s)) MiB shared per host") }
        parts.append("rank 0 allocated \(mib(own)) MiB of its own")
        if let pss = r.peakPssBytesSum { parts.append("peak PSS summed over ranks \(mib(pss)) MiB") }
        if let sent = first.exchangeBytesPerStep { parts.append("rank 0 sent \(mib(sent)) MiB per step to ranks outside its memory") }
        return parts.joined(separator: "; ")
    }

    /// "auto (im2col ×1, winograd4x4 ×12)".
    func convSummary(_ c: TrainConfig) -> String {
        var counts: [String: Int] = [:]
        for case let .conv(_, ch, _, h, w) in c.network.layers {
            counts[c.convAlgorithm.resolved(inChannels: ch, height: h, width: w).rawValue, default: 0] += 1
        }
        let parts = counts.keys.sorted().map { "\($0) ×\(counts[$0]!)" }.joined(separator: ", ")
        return "\(c.convAlgorithm.rawValue) (\(parts))"
    }

    /// "overlapped with backward, gradients sent as bf16", or the host-shared equivalent.
    func exchangeSummary(_ c: TrainConfig, world: World) -> String {
        guard c.exchange == .hostShared else {
            return "\(c.overlap ? "overlapped with backward" : "after backward"), gradients sent as \(c.allreduceDType.rawValue)"
                + (c.compression.map { ", compressed by \($0.description)" } ?? "")
        }
        let hosts = Set(world.hostNames).count
        return "exchange host-shared \(c.overlap ? "overlapped with backward" : "after backward"): one replica per host, \(world.size / hosts) ranks per host"
            + (hosts > 1 ? ", gradients sent between hosts as \(c.allreduceDType.rawValue)" : "")
    }

    func layout(_ c: TrainConfig, world: World, threads: Int, plan: BucketPlan) -> String {
        let spec = c.network
        var hosts: [String: Int] = [:]
        for h in world.hostNames { hosts[h, default: 0] += 1 }
        let hostList = hosts.keys.sorted().map { "\($0)×\(hosts[$0]!)" }.joined(separator: ", ")
        let sizes = plan.buckets.map { Text.fixed(Double($0.bytes) / 1_048_576, 1) }.joined(separator: " ")
        return """
        vgg-dp: \(spec.model.rawValue) at \(spec.imageSize)×\(spec.imageSize), \(spec.classes) classes, width ÷\(spec.widthDivisor), \
        \(Text.grouped(spec.parameterCount)) parameters, mode \(c.mode.rawValue)
        ranks: \(world.size) on \(hosts.count) host(s) [\(hostList)]; BLAS threads per rank: \(threads) \
        (OpenBLAS \(BLAS.coreName)\(BLASKernel.choiceNote.map { ", \($0)" } ?? "")); \(world.threadLevel); \(World.libraryVersion)
        batch: \(c.batchPerRank) per rank, global \(c.batchPerRank * world.size); warm-up \(c.warmup), timed steps \(c.steps); \
        convolutions: \(convSummary(c))
        buckets: \(plan.buckets.count) (target \(c.bucketMB) MiB, \(exchangeSummary(c, world: world))), MiB: \(sizes)
        """
    }
}
