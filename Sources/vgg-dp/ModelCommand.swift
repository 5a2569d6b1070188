import ArgumentParser
import Foundation
import Trainer
import VGGEngine

enum ModelKind: String, CaseIterable, ExpressibleByArgument {
    case weak, strong
}

/// `vgg-dp model PROFILE.json`: predicted step time, images/s and efficiency
/// on N ranks from a one-rank profile and an α-β link cost. Starts no MPI.
struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Predict data-parallel scaling from a one-rank profile (--report FILE) and a link cost (α, β).",
        discussion: """
        The profile is a one-rank run report (vgg-dp --report FILE): per-layer backward times, the other phases \
        and the bucket plan. The link is measured (--fit FILE from `allreduce-bench --json FILE`) or given \
        (--link 25gbit --latency 5us: β = 8/rate, α = the latency of one ring step).

        Each bucket's allreduce, T = 2(N−1)·α + 2·((N−1)/N)·bytes·β, can start once backward has passed the \
        bucket's lowest layer; buckets go one after another on one communication thread; after backward the \
        optimizer steps each bucket once its allreduce is done (exposed = the waits). Compute times scale \
        linearly with the batch per rank and with --compute-scale; the optimizer does not depend on the batch.

        Example: vgg-dp model runs/profile.json --link 25gbit --latency 5us --batch-size 32 --ranks "8 64 1024" \
        --markdown model.md --csv model.csv --plots plots
        """)

    @Argument(help: ArgumentHelp("One-rank run report (vgg-dp --report FILE).", valueName: "PROFILE.json"))
    var profile: String
    @Option(help: ArgumentHelp("α and β from `vgg-dp allreduce-bench --json FILE`.", valueName: "FILE"))
    var fit: String?
    @Option(help: ArgumentHelp("Fit the --fit file's rows again with this weighting (relative or absolute) instead of using its fit.", valueName: "WEIGHTING"))
    var refit: CostFit.Weighting?
    @Option(help: ArgumentHelp("Link rate for a given network, e.g. 10gbit, 25gbit, 100gbit.", valueName: "RATE"))
    var link: String?
    @Option(help: ArgumentHelp("Latency α of one ring step with --link, e.g. 5us.", valueName: "TIME"))
    var latency: String?
    @Option(help: "weak (fixed batch per rank) or strong (fixed global batch).")
    var kind: ModelKind = .weak
    @Option(help: "Batch per rank for weak scaling (default: the profile's).")
    var batchSize: Int?
    @Option(help: "Global batch for strong scaling; rank counts it does not divide are left out.")
    var globalBatch: Int?
    @Option(help: "Rank counts, space- or comma-separated.")
    var ranks = "1 2 4 8 16 32 64 128 256 512 1024"
    @Option(help: "Multiply every compute time by this (a faster or slower host, hosts sharing cores).")
    var computeScale: Double = 1
    @Option(help: "Rebuild the bucket plan with this bucket size in MiB (default: the profile's plan).")
    var bucketMb: Double?
    @Option(parsing: .upToNextOption, help: ArgumentHelp("Measured run reports to compare with the model's prediction at their rank count and batch.", valueName: "RUN.json"))
    var measured: [String] = []
    @Option(help: ArgumentHelp("Write the Markdown here (default: print it).", valueName: "FILE"))
    var markdown: String?
    @Option(help: ArgumentHelp("Write the table as CSV (the columns of `vgg-dp report --csv`).", valueName: "FILE"))
    var csv: String?
    @Option(help: ArgumentHelp("Draw scripts/plot.py's scaling plots into this folder.", valueName: "DIR"))
    var plots: String?

    func run() throws {
        try checkWritable(markdown, flag: "--markdown")
        try checkWritable(csv, flag: "--csv")
        let report = try loadRun(profile, what: "profile")
        var compute = try ComputeProfile(report: report)
        if let mb = bucketMb {
            guard mb >= 0, mb.isFinite else { throw TrainerError.usage("--bucket-mb must be 0 or more, got \(mb)") }
            guard let model = VGGModel(rawValue: report.model) else {
                throw TrainerError.usage("model: the profile's model \(report.model) is not one this vgg-dp knows")
            }
            let spec = NetworkSpec(model: model, imageSize: report.imageSize, classes: report.classes, widthDivisor: report.widthDivisor)
            compute = compute.with(plan: BucketPlan(spec: spec, bucketMB: mb))
        }
        let (cost, source) = try linkCost()
        let counts = try parseRanks(ranks)
        let study: ModelStudy
        switch kind {
        case .weak:
            guard globalBatch == nil else { throw TrainerError.usage("--global-batch is for --kind strong; weak scaling takes --batch-size") }
            study = try ScalingModel.study(profile: compute, cost: cost, kind: .weak, batch: batchSize ?? report.batchPerRank,
                                           ranks: counts, computeScale: computeScale)
        case .strong:
            guard batchSize == nil else { throw TrainerError.usage("--batch-size is for --kind weak; strong scaling takes --global-batch") }
            guard let g = globalBatch else { throw TrainerError.usage("--kind strong needs --global-batch G") }
            study = try ScalingModel.study(profile: compute, cost: cost, kind: .strong, batch: g, ranks: counts,
                                           computeScale: computeScale)
        }
        let runs = try measured.map { try loadRun($0, what: "measured run") }
        let plotter = try plots.map { try Plotter(folder: $0) }

        let mode = "\(report.mode) (model)"
        let table = study.csv(model: report.model, imageSize: report.imageSize, mode: mode, blasThreads: report.blasThreads,
                              file: URL(fileURLWithPath: profile).lastPathComponent)
        if let csv {
            try writeAtomically(Data(table.utf8), to: csv)
            say("wrote \(csv)")
        }
        var pngs: [String] = []
        if let plotter {
            pngs = try draw(plotter, csvText: table, csvPath: csv)
            for p in pngs { say("wrote \(p)") }
        }
        let text = document(report: report, compute: compute, cost: cost, source: source, study: study, runs: runs, pngs: pngs)
        if let markdown {
            try writeAtomically(Data(text.utf8), to: markdown)
            say("wrote \(markdown)")
        } else {
            print(text, terminator: "")
        }
    }

    func say(_ s: String) { FileHandle.standardError.write(Data("vgg-dp model: \(s)\n".utf8)) }

    func loadRun(_ path: String, what: String) throws -> RunReport {
        do {
            return try ScalingStudy.load(paths: [path])[0].report
        } catch let e as TrainerError {
            throw TrainerError.usage("\(what) " + e.description.replacingOccurrences(of: "report: ", with: ""))
        }
    }

    /// α and β, and a line saying where they come from.
    func linkCost() throws -> (LinkCost, String) {
        switch (fit, link) {
        case (.some, .some):
            throw TrainerError.usage("give --fit FILE (measured) or --link RATE --latency TIME (given), not both")
        case (nil, nil):
            throw TrainerError.usage("model: give the network: --fit FILE (from allreduce-bench --json) or --link RATE --latency TIME")
        case let (.some(path), nil):
            guard latency == nil else { throw TrainerError.usage("--latency goes with --link, not --fit") }
            let record = try AllreduceBenchRecord.load(path)
            guard record.ranks >= 2, let stored = record.fit else {
                throw TrainerError.usage("--fit \(path) has no fit (a one-rank benchmark); measure with 2 or more ranks")
            }
            let f = try refit.map { try AllreduceBenchRecord.fit(ranks: record.ranks, rows: record.rows, weighting: $0) } ?? stored
            let hosts = Set(record.hosts).sorted()
            return (f.cost, "measured: \(path) (allreduce-bench, \(record.ranks) ranks on \(hosts.count) host(s): \(hosts.joined(separator: ", "))); \(f.summary)")
        case let (nil, .some(rate)):
            guard refit == nil else { throw TrainerError.usage("--refit goes with --fit, not --link") }
            guard let lat = latency else { throw TrainerError.usage("--link needs --latency (α, the latency of one ring step, e.g. 5us)") }
            let bits = try Units.bitsPerSecond(rate)
            let seconds = try Units.seconds(lat)
            let cost = LinkCost(bitsPerSecond: bits, latency: seconds)
            return (cost, String(format: "given: --link %@ --latency %@: α = %.2f µs, 1/β = %.3f GB/s",
                                 rate as NSString, lat as NSString, seconds * 1e6, cost.bandwidthGBps))
        }
    }

    func parseRanks(_ text: String) throws -> [Int] {
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init)
        let values = parts.compactMap(Int.init)
        guard !parts.isEmpty, values.count == parts.count, values.allSatisfy({ $0 >= 1 }) else {
            throw TrainerError.usage("--ranks must list positive integers, e.g. \"1 2 4 8\", got '\(text)'")
        }
        return values
    }

    func draw(_ plotter: Plotter, csvText: String, csvPath: String?) throws -> [String] {
        var temporary: URL?
        defer { if let t = temporary { try? FileManager.default.removeItem(at: t) } }
        let input: String
        if let csvPath {
            input = csvPath
        } else {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vgg-dp-model-\(getpid())")
            try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            temporary = dir
            input = dir.appendingPathComponent("model.csv").path
            try writeAtomically(Data(csvText.utf8), to: input)
        }
        var output = ""
        let status = Plotter.execute(plotter.python, [plotter.script, "scaling", input, "--out", plotter.folder], capture: &output)
        guard status == 0 else { throw TrainerError.failed("--plots: \(plotter.script) scaling failed (exit status \(status))") }
        return output.split(separator: "\n").map(String.init).filter { $0.hasSuffix(".png") }
    }

    func document(report r: RunReport, compute: ComputeProfile, cost: LinkCost, source: String, study: ModelStudy,
                  runs: [RunReport], pngs: [String]) -> String {
        func ms(_ x: Double) -> String { Text.fixed(x * 1000, 2) }
        var out: [String] = []
        let batch = study.kind == .strong ? "global batch \(study.baseline.globalBatch)" : "batch \(study.baseline.batchPerRank) per rank"
        out.append("# Model: \(study.kind.rawValue) scaling of \(r.model) at \(r.imageSize)×\(r.imageSize), \(batch)")
        out.append("")
        let one = ScalingModel.step(profile: compute, cost: cost, ranks: 1, batchPerRank: compute.batchPerRank)
        out.append("- profile: \(profile): \(r.model) \(r.imageSize)×\(r.imageSize), width ÷\(r.widthDivisor), \(r.classes) classes, mode \(r.mode), batch \(r.batchPerRank), "
                   + "\(r.blasThreads) BLAS thread(s) (OpenBLAS \(r.blasCore)) on \(r.hosts.first ?? "?"); measured step \(ms(r.stepSeconds.mean)) ms, "
                   + "modelled one-rank step \(ms(one.step)) ms = data \(ms(one.data)) + forward \(ms(one.forward)) + backward \(ms(one.backward)) + optimizer \(ms(one.update))")
        if computeScale != 1 { out.append("- compute scale: every compute time × \(computeScale)") }
        out.append("- network: \(source)")
        let sizes = compute.buckets.map { Text.fixed(Double($0.bytes) / 1_048_576, 1) }.joined(separator: " ")
        out.append("- buckets: \(compute.buckets.count)\(bucketMb.map { " (rebuilt at \($0) MiB)" } ?? " (the profile's plan, \(r.bucketMb) MiB)"), MiB: \(sizes); "
                   + (compute.overlap ? "allreduce overlapped with backward" : "allreduce after backward"))
        out.append("- T_allreduce(bytes) = 2(N−1)·α + 2·((N−1)/N)·bytes·β per bucket, one after another on one communication thread; "
                   + "compute scales linearly with the batch per rank; one rank per host")
        out.append("")
        out += study.markdownTable()
        out.append("")
        out.append("step: predicted time per step; compute: data + forward + backward + optimizer; allreduce: the buckets' allreduce time, hidden or not; "
                   + "exposed: what the compute thread waits for after backward; efficiency: "
                   + (study.kind == .strong ? "T_b·N_b / (N·T_N)" : "T_b / T_N") + " against the first row.")
        if !study.skipped.isEmpty {
            out.append("")
            out.append("Left out (global batch \(study.baseline.globalBatch) does not divide): \(study.skipped.map(String.init).joined(separator: ", ")) ranks.")
        }
        if !runs.isEmpty {
            out.append("")
            out.append("## Measured vs predicted")
            out.append("")
            var rows: [[String]] = []
            var notes: [String] = []
            for (path, m) in zip(measured, runs) {
                let p = ScalingModel.step(profile: compute, cost: cost, ranks: m.ranks, batchPerRank: m.batchPerRank, computeScale: computeScale)
                let err = m.stepSeconds.mean > 0 ? (p.step - m.stepSeconds.mean) / m.stepSeconds.mean : 0
                rows.append([URL(fileURLWithPath: path).lastPathComponent, String(m.ranks), String(m.batchPerRank), String(Set(m.hosts).count),
                             ms(m.stepSeconds.mean), ms(p.step), (err >= 0 ? "+" : "") + Text.fixed(100 * err, 1) + "%",
                             ms(m.allreduceSecondsPerStep), ms(p.allreduce), ms(m.exposedSecondsPerStep), ms(p.exposed)])
                if m.model != r.model || m.imageSize != r.imageSize || m.widthDivisor != r.widthDivisor || m.classes != r.classes {
                    notes.append("\(path) is \(m.model) \(m.imageSize)×\(m.imageSize) ÷\(m.widthDivisor), the profile \(r.model) \(r.imageSize)×\(r.imageSize) ÷\(r.widthDivisor)")
                }
                if m.bucketMb != r.bucketMb && bucketMb == nil { notes.append("\(path) used \(m.bucketMb) MiB buckets, the profile \(r.bucketMb)") }
            }
            out += ScalingStudy.markdownTable(["run", "ranks", "batch/rank", "hosts", "measured step ms", "predicted ms", "error",
                                              "measured allreduce ms", "predicted", "measured exposed ms", "predicted"], rows, leftColumns: 1)
            out.append("")
            out.append("error: (predicted − measured) / measured step time; measured times are the slowest rank's (step) and the ranks' mean (allreduce, exposed).")
            for n in notes { out.append("- note: \(n)") }
        }
        if !pngs.isEmpty {
            let from = markdown.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path } ?? FileManager.default.currentDirectoryPath
            out.append("")
            out.append("## Plots")
            out.append("")
            out.append("Drawn by scripts/plot.py from the model's CSV: its \"measured\" lines are the model's predictions.")
            for png in pngs {
                out.append("")
                out.append("![\(Plotter.title(png))](\(relativePath(to: png, fromFolder: from)))")
            }
        }
        return out.joined(separator: "\n") + "\n"
    }
}
