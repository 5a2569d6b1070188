import Comm
import Foundation
import VGGEngine

/// Everything a run measured, as written to `--report FILE` (JSON, snake_case
/// keys). Rank 0 builds it from all ranks' timings, gathered at the end.
public struct RunReport: Codable, Sendable {
    public struct Bucket: Codable, Sendable {
        public var index: Int
        public var layers: [String]
        public var offset: Int
        public var count: Int
        public var bytes: Int
        /// Mean over timed steps (rank 0), seconds.
        public var allreduceSeconds: Double
    }

    public struct Layer: Codable, Sendable {
        public var name: String
        public var forwardSeconds: Double
        public var backwardSeconds: Double
        /// Of those, time inside sgemm; the rest is im2col, col2im, bias, ReLU, pooling.
        public var forwardGemmSeconds: Double
        public var backwardGemmSeconds: Double
        public var forwardFlops: Int
        public var backwardFlops: Int
        public var forwardGflopsPerSecond: Double
        public var backwardGflopsPerSecond: Double
    }

    public struct Rank: Codable, Sendable {
        public var rank: Int
        public var host: String
        public var stepSeconds: Summary
        /// Mean seconds per step of each phase.
        public var data: Double
        public var forward: Double
        public var backward: Double
        public var optimizer: Double
        public var allreduce: Double
        public var exposed: Double
        public var peakRssBytes: Int
        /// Resident memory at the 100th timed step and at the end (memory must stay flat).
        public var rssAtStep100Bytes: Int? = nil
        public var rssAtEndBytes: Int? = nil
        /// Raw per-step times.
        public var steps: [StepTimes]
    }

    public var schema = 1
    public var tool = "vgg-dp"
    public var complete = true
    public var startedAt: String
    public var command: [String]

    public var model: String
    public var imageSize: Int
    public var classes: Int
    public var widthDivisor: Int
    public var mode: String
    public var objective: String?
    public var ranks: Int
    public var batchPerRank: Int
    public var globalBatch: Int
    public var warmup: Int
    public var steps: Int
    public var seed: UInt64
    public var parameters: Int
    public var forwardFlopsPerImage: Int
    /// FLOPs counted per image for this mode (forward, or forward + backward).
    public var stepFlopsPerImage: Int

    public var hosts: [String]
    public var blasThreads: Int
    public var blasCore: String
    public var blasConfig: String
    public var openblasCoretype: String?
    /// Set when vgg-dp chose the kernel (see `BLASKernel`): how and why.
    public var blasKernelChoice: String? = nil
    public var mpiLibrary: String
    public var mpiThreadLevel: String
    /// Convolution lowering asked for, and what each conv layer ran.
    public var conv: String? = nil
    public var convPerLayer: [String]? = nil
    public var overlap: Bool
    /// The type gradients travelled in.
    public var allreduceDtype: String? = nil
    /// How the communication thread waited ("none" without one).
    public var commWait: String?
    public var bucketMb: Double
    public var buckets: [Bucket]

    /// Step time of the slowest rank (the one with the largest mean).
    public var stepSeconds: Summary
    /// Global batch / slowest rank's mean step time.
    public var imagesPerSecond: Double
    public var gflopsPerSecond: Double
    public var gflopsPerSecondPerRank: Double
    /// Slowest rank's mean / mean of the ranks' means.
    public var stragglerRatio: Double
    public var allreduceSecondsPerStep: Double
    public var exposedSecondsPerStep: Double
    /// Mean over steps of the ranks' mean loss.
    public var lossPerStep: [Double]
    public var parameterChecksum: String
    public var peakRssBytes: Int
    public var perRank: [Rank]
    public var layers: [Layer]
    /// sgemm GFLOP/s of the `vgg-dp peak` probe each rank ran at start with
    /// its thread count (mean over ranks): this machine's limit.
    public var peakGflopsPerRank: Double? = nil
    /// gflopsPerSecondPerRank / peakGflopsPerRank.
    public var peakShare: Double? = nil
    /// Steps whose update was skipped for a NaN/Inf gradient (--skip-nonfinite).
    public var skippedSteps: Int? = nil
    /// Why the report is incomplete, when it is.
    public var note: String? = nil
}

/// What one rank measured, as sent to rank 0 in one MPI_Gatherv of doubles.
public struct RankTimings: Equatable, Sendable {
    public var steps: [StepTimes]
    /// Per layer means over timed steps: forward, backward, forward sgemm,
    /// backward sgemm (4 arrays of the layer count, concatenated).
    public var layerMeans: [Double]
    /// Per bucket mean allreduce seconds.
    public var bucketMeans: [Double]
    public var peakRssBytes: Int
    /// sgemm GFLOP/s this rank measured at start with its thread count.
    public var peakGflops: Double
    /// Timeline events (Timeline.stride values per timed step), seconds since
    /// the common start; empty unless a trace was asked for.
    public var timeline: [Double]
    /// Resident memory at the 100th timed step (0 if the run was shorter) and at the end.
    public var residentAtStep100 = 0
    public var residentAtEnd = 0
    /// Steps whose update was skipped for a non-finite gradient.
    public var skippedSteps = 0

    public init(steps: [StepTimes], layerMeans: [Double], bucketMeans: [Double], peakRssBytes: Int,
                peakGflops: Double, timeline: [Double] = []) {
        self.steps = steps
        self.layerMeans = layerMeans
        self.bucketMeans = bucketMeans
        self.peakRssBytes = peakRssBytes
        self.peakGflops = peakGflops
        self.timeline = timeline
    }

    public var packed: [Double] {
        var v: [Double] = [Double(steps.count), Double(layerMeans.count), Double(bucketMeans.count),
                           Double(timeline.count), Double(peakRssBytes), peakGflops,
                           Double(residentAtStep100), Double(residentAtEnd), Double(skippedSteps)]
        for r in steps { v += r.packed }
        return v + layerMeans + bucketMeans + timeline
    }

    public init(packed v: [Double]) {
        let n = Int(v[0]), l = Int(v[1]), b = Int(v[2]), t = Int(v[3])
        peakRssBytes = Int(v[4])
        peakGflops = v[5]
        residentAtStep100 = Int(v[6])
        residentAtEnd = Int(v[7])
        skippedSteps = Int(v[8])
        var o = 9
        steps = (0..<n).map { i in StepTimes(packed: v[(o + i * StepTimes.fields)..<(o + (i + 1) * StepTimes.fields)]) }
        o += n * StepTimes.fields
        layerMeans = Array(v[o..<(o + l)]); o += l
        bucketMeans = Array(v[o..<(o + b)]); o += b
        timeline = Array(v[o..<(o + t)])
    }
}

/// The environment a report records, read once on rank 0.
public struct RunEnvironment: Sendable {
    public var hosts: [String]
    public var blasThreads: Int
    public var blasCore: String
    public var blasConfig: String
    public var openblasCoretype: String?
    public var blasKernelChoice: String? = nil
    public var mpiLibrary: String
    public var mpiThreadLevel: String
    public var commWait: String
}

extension RunReport {
    /// Gathers every rank's timings; returns them on rank 0, nil elsewhere.
    public static func gatherTimings(_ t: DataParallelTrainer) -> [RankTimings]? {
        let mine = t.timings.packed
        return t.collective(.gather, step: t.config.warmup + t.config.steps) { t.world.gather(mine) }?
            .map(RankTimings.init(packed:))
    }

    /// Builds the report from all ranks' timings. Pure: no MPI, no clock.
    public static func make(config: TrainConfig, plan: BucketPlan, ranks all: [RankTimings], environment env: RunEnvironment,
                            checksum: UInt64, command: [String], startedAt: String, complete: Bool = true) -> RunReport {
        let spec = config.network
        let specs = spec.layers
        let layerCount = specs.count
        var layerMeans = [Double](repeating: 0, count: 4 * layerCount)
        var ranks: [Rank] = []
        for (r, timings) in all.enumerated() {
            for i in 0..<min(4 * layerCount, timings.layerMeans.count) { layerMeans[i] += timings.layerMeans[i] / Double(all.count) }
            let records = timings.steps
            func mean(_ f: (StepTimes) -> Double) -> Double {
                records.isEmpty ? 0 : records.map(f).reduce(0, +) / Double(records.count)
            }
            ranks.append(Rank(rank: r, host: r < env.hosts.count ? env.hosts[r] : "?", stepSeconds: Summary(records.map(\.wall)),
                              data: mean(\.data), forward: mean(\.forward), backward: mean(\.backward),
                              optimizer: mean(\.optimizer), allreduce: mean(\.allreduce), exposed: mean(\.exposed),
                              peakRssBytes: timings.peakRssBytes,
                              rssAtStep100Bytes: timings.residentAtStep100 > 0 ? timings.residentAtStep100 : nil,
                              rssAtEndBytes: timings.residentAtEnd > 0 ? timings.residentAtEnd : nil, steps: records))
        }
        let slowest = ranks.max { $0.stepSeconds.mean < $1.stepSeconds.mean }!
        let meanOfMeans = ranks.map(\.stepSeconds.mean).reduce(0, +) / Double(ranks.count)
        let globalBatch = config.batchPerRank * all.count
        let stepFlops = config.mode.hasBackward ? spec.forwardBackwardFLOPsPerImage : spec.forwardFLOPsPerImage
        let imagesPerSecond = slowest.stepSeconds.mean > 0 ? Double(globalBatch) / slowest.stepSeconds.mean : 0
        let gflops = imagesPerSecond * Double(stepFlops) / 1e9

        // Ranks may have recorded different numbers of steps (a run stopped
        // early): the loss curve covers the steps all of them have.
        let stepCount = ranks.map(\.steps.count).min() ?? 0
        let lossPerStep = (0..<stepCount).map { s in ranks.map { $0.steps[s].loss }.reduce(0, +) / Double(ranks.count) }

        let peak = all.map(\.peakGflops).reduce(0, +) / Double(all.count)
        var layers: [Layer] = []
        for (i, s) in specs.enumerated() {
            let fwd = layerMeans[i], bwd = layerMeans[layerCount + i]
            let fflops = s.forwardMACsPerImage * 2 * config.batchPerRank
            let bflops = config.mode.hasBackward ? fflops * (i == 0 ? 1 : 2) : 0
            layers.append(Layer(name: s.name, forwardSeconds: fwd, backwardSeconds: bwd,
                                forwardGemmSeconds: layerMeans[2 * layerCount + i],
                                backwardGemmSeconds: layerMeans[3 * layerCount + i],
                                forwardFlops: fflops, backwardFlops: bflops,
                                forwardGflopsPerSecond: fwd > 0 ? Double(fflops) / fwd / 1e9 : 0,
                                backwardGflopsPerSecond: bwd > 0 ? Double(bflops) / bwd / 1e9 : 0))
        }
        let rank0Buckets = all.first?.bucketMeans ?? []
        let buckets = plan.buckets.enumerated().map { b, e in
            Bucket(index: b, layers: e.layers.map { specs[$0].name }, offset: e.slice.offset, count: e.slice.count,
                   bytes: e.bytes, allreduceSeconds: b < rank0Buckets.count ? rank0Buckets[b] : 0)
        }
        var report = RunReport(
            complete: complete, startedAt: startedAt, command: command,
            model: spec.model.rawValue, imageSize: spec.imageSize, classes: spec.classes, widthDivisor: spec.widthDivisor,
            mode: config.mode.rawValue, objective: config.mode.hasBackward ? config.objective.rawValue : nil,
            ranks: all.count, batchPerRank: config.batchPerRank, globalBatch: globalBatch,
            warmup: config.warmup, steps: config.steps, seed: config.seed,
            parameters: spec.parameterCount, forwardFlopsPerImage: spec.forwardFLOPsPerImage, stepFlopsPerImage: stepFlops,
            hosts: env.hosts, blasThreads: env.blasThreads, blasCore: env.blasCore, blasConfig: env.blasConfig,
            openblasCoretype: env.openblasCoretype, blasKernelChoice: env.blasKernelChoice, mpiLibrary: env.mpiLibrary, mpiThreadLevel: env.mpiThreadLevel,
            overlap: config.overlap, commWait: env.commWait, bucketMb: config.bucketMB, buckets: buckets,
            stepSeconds: slowest.stepSeconds, imagesPerSecond: imagesPerSecond, gflopsPerSecond: gflops,
            gflopsPerSecondPerRank: gflops / Double(all.count),
            stragglerRatio: meanOfMeans > 0 ? slowest.stepSeconds.mean / meanOfMeans : 1,
            allreduceSecondsPerStep: ranks.map(\.allreduce).reduce(0, +) / Double(ranks.count),
            exposedSecondsPerStep: ranks.map(\.exposed).reduce(0, +) / Double(ranks.count),
            lossPerStep: lossPerStep, parameterChecksum: Checksum.hex(checksum),
            peakRssBytes: ranks.map(\.peakRssBytes).max() ?? 0, perRank: ranks, layers: layers)
        report.conv = config.convAlgorithm.rawValue
        report.allreduceDtype = config.allreduceDType.rawValue
        report.convPerLayer = specs.compactMap { s -> String? in
            guard case let .conv(name, c, _, h, w) = s else { return nil }
            return "\(name):\(config.convAlgorithm.resolved(inChannels: c, height: h, width: w).rawValue)"
        }
        report.peakGflopsPerRank = peak
        report.skippedSteps = all.first?.skippedSteps
        report.peakShare = peak > 0 ? report.gflopsPerSecondPerRank / peak : nil
        return report
    }

    /// Writes JSON atomically: a temporary file in the same folder, then rename.
    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(try encoder.encode(self), to: path)
    }

    public static func read(from path: String) throws -> RunReport {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(RunReport.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }
}

/// Writes a file so that readers see the old content or the new, never a
/// part: a temporary file in the same folder, fsync, then rename over.
public func writeAtomically(_ data: Data, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())").path
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw TrainerError.failed("cannot write \(path): \(String(cString: strerror(errno)))") }
    var ok = data.withUnsafeBytes { raw -> Bool in
        var offset = 0
        while offset < raw.count {
            let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
            if n <= 0 { return false }
            offset += n
        }
        return true
    }
    ok = ok && fsync(fd) == 0
    close(fd)
    guard ok, rename(tmp, path) == 0 else {
        let reason = String(cString: strerror(errno))
        unlink(tmp)
        throw TrainerError.failed("cannot write \(path): \(reason)")
    }
}

/// Resident set size of this process now, bytes (/proc/self/statm).
public func currentResidentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// Peak resident set size of this process, bytes.
public func peakResidentBytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Int(usage.ru_maxrss) * 1024
}
