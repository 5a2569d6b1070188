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
    public var mpiLibrary: String
    public var mpiThreadLevel: String
    public var overlap: Bool
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
}

extension RunReport {
    /// The numbers one rank sends to rank 0: per-step times, per-layer means,
    /// per-bucket means and its peak RSS.
    static func pack(_ t: DataParallelTrainer) -> [Double] {
        var v: [Double] = [Double(t.records.count), Double(peakResidentBytes())]
        for r in t.records { v += r.packed }
        v += t.layerForward + t.layerBackward
        v += t.layerForwardGemm + t.layerBackwardGemm
        v += t.bucketSeconds
        return v
    }

    /// Gathers every rank's timings; returns the report on rank 0, nil elsewhere.
    public static func gather(_ t: DataParallelTrainer, checksum: UInt64, command: [String], startedAt: Date) -> RunReport? {
        guard let all = t.world.gather(pack(t)) else { return nil }
        let layerCount = t.network.layers.count
        let bucketCount = t.plan.buckets.count
        let config = t.config
        let spec = config.network
        let specs = spec.layers

        var ranks: [Rank] = []
        var layerMeans = [Double](repeating: 0, count: 4 * layerCount)
        var rank0Buckets: [Double] = []
        for (r, v) in all.enumerated() {
            let steps = Int(v[0]), rss = Int(v[1])
            var offset = 2
            var records: [StepTimes] = []
            for _ in 0..<steps {
                records.append(StepTimes(packed: v[offset..<(offset + StepTimes.fields)]))
                offset += StepTimes.fields
            }
            for i in 0..<(4 * layerCount) { layerMeans[i] += v[offset + i] / Double(all.count) }
            offset += 4 * layerCount
            if r == 0 { rank0Buckets = Array(v[offset..<(offset + bucketCount)]) }
            func mean(_ f: (StepTimes) -> Double) -> Double {
                records.isEmpty ? 0 : records.map(f).reduce(0, +) / Double(records.count)
            }
            ranks.append(Rank(rank: r, host: t.world.hostNames[r], stepSeconds: Summary(records.map(\.wall)),
                              data: mean(\.data), forward: mean(\.forward), backward: mean(\.backward),
                              optimizer: mean(\.optimizer), allreduce: mean(\.allreduce), exposed: mean(\.exposed),
                              peakRssBytes: rss, steps: records))
        }
        let slowest = ranks.max { $0.stepSeconds.mean < $1.stepSeconds.mean }!
        let meanOfMeans = ranks.map(\.stepSeconds.mean).reduce(0, +) / Double(ranks.count)
        let globalBatch = t.globalBatch
        let stepFlops = config.mode.hasBackward ? spec.forwardBackwardFLOPsPerImage : spec.forwardFLOPsPerImage
        let imagesPerSecond = Double(globalBatch) / slowest.stepSeconds.mean
        let gflops = imagesPerSecond * Double(stepFlops) / 1e9

        let stepCount = ranks.map(\.steps.count).min() ?? 0
        let lossPerStep = (0..<stepCount).map { s in ranks.map { $0.steps[s].loss }.reduce(0, +) / Double(ranks.count) }

        var layers: [Layer] = []
        for (i, s) in specs.enumerated() {
            let fwd = layerMeans[i], bwd = layerMeans[layerCount + i]
            let fflops = s.forwardMACsPerImage * 2 * t.config.batchPerRank
            let bflops = config.mode.hasBackward ? fflops * (i == 0 ? 1 : 2) : 0
            layers.append(Layer(name: s.name, forwardSeconds: fwd, backwardSeconds: bwd,
                                forwardGemmSeconds: layerMeans[2 * layerCount + i],
                                backwardGemmSeconds: layerMeans[3 * layerCount + i],
                                forwardFlops: fflops, backwardFlops: bflops,
                                forwardGflopsPerSecond: fwd > 0 ? Double(fflops) / fwd / 1e9 : 0,
                                backwardGflopsPerSecond: bwd > 0 ? Double(bflops) / bwd / 1e9 : 0))
        }
        let buckets = t.plan.buckets.enumerated().map { b, e in
            Bucket(index: b, layers: e.layers.map { specs[$0].name }, offset: e.slice.offset, count: e.slice.count,
                   bytes: e.bytes, allreduceSeconds: rank0Buckets.isEmpty ? 0 : rank0Buckets[b])
        }
        let formatter = ISO8601DateFormatter()
        return RunReport(
            startedAt: formatter.string(from: startedAt), command: command,
            model: spec.model.rawValue, imageSize: spec.imageSize, classes: spec.classes, widthDivisor: spec.widthDivisor,
            mode: config.mode.rawValue, objective: config.mode.hasBackward ? config.objective.rawValue : nil,
            ranks: t.world.size, batchPerRank: config.batchPerRank, globalBatch: globalBatch,
            warmup: config.warmup, steps: config.steps, seed: config.seed,
            parameters: spec.parameterCount, forwardFlopsPerImage: spec.forwardFLOPsPerImage, stepFlopsPerImage: stepFlops,
            hosts: t.world.hostNames, blasThreads: t.blasThreads, blasCore: BLAS.coreName, blasConfig: BLAS.config,
            openblasCoretype: ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"],
            mpiLibrary: World.libraryVersion, mpiThreadLevel: t.world.threadLevel.description,
            overlap: config.overlap, commWait: t.commWaitDescription, bucketMb: config.bucketMB, buckets: buckets,
            stepSeconds: slowest.stepSeconds, imagesPerSecond: imagesPerSecond, gflopsPerSecond: gflops,
            gflopsPerSecondPerRank: gflops / Double(t.world.size),
            stragglerRatio: meanOfMeans > 0 ? slowest.stepSeconds.mean / meanOfMeans : 1,
            allreduceSecondsPerStep: ranks.map(\.allreduce).reduce(0, +) / Double(ranks.count),
            exposedSecondsPerStep: ranks.map(\.exposed).reduce(0, +) / Double(ranks.count),
            lossPerStep: lossPerStep, parameterChecksum: Checksum.hex(checksum),
            peakRssBytes: ranks.map(\.peakRssBytes).max() ?? 0, perRank: ranks, layers: layers)
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

public func writeAtomically(_ data: Data, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
    do {
        try data.write(to: tmp)
        if FileManager.default.fileExists(atPath: url.path) {
            _ = try FileManager.default.replaceItemAt(url, withItemAt: tmp)
        } else {
            try FileManager.default.moveItem(at: tmp, to: url)
        }
    } catch {
        try? FileManager.default.removeItem(at: tmp)
        throw TrainerError.failed("cannot write \(path): \(error.localizedDescription)")
    }
}

/// Peak resident set size of this process, bytes.
public func peakResidentBytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Int(usage.ru_maxrss) * 1024
}
