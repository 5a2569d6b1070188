import Comm
import Foundation
import Reports
import VGGEngine
import Vocabulary

/// The parts of a run report that need the trainer: the gather of every
/// rank's timings, and the report built from them with the configuration,
/// the network's layers and the bucket plan.
extension RunReport {
    /// Builds the report from all ranks' timings. Pure: no MPI, no clock.
    /// `rankCount` is the job's rank count when `all` holds only some ranks'
    /// timings (a partial report after a signal has rank 0's alone): ranks,
    /// global batch, images/s and the per-rank GFLOP/s are the job's, and
    /// `per_rank` lists the ranks whose timings there are. `restarts` are the
    /// job's restarts by the launcher (`--restart-log`), nil when it was not
    /// launched with restarts.
    public static func make(config: TrainConfig, plan: BucketPlan, ranks all: [RankTimings], environment env: RunEnvironment,
                            checksum: UInt64, command: [String], startedAt: String, complete: Bool = true,
                            rankCount: Int? = nil, restarts: [Restart]? = nil) -> RunReport {
        let jobRanks = max(rankCount ?? all.count, all.count)
        let spec = config.network
        let specs = spec.layers
        let layerCount = specs.count
        var layerMeans = [LayerTimes](repeating: LayerTimes(), count: layerCount)
        var ranks: [Rank] = []
        for (r, timings) in all.enumerated() {
            let n = Double(all.count)
            for (i, t) in timings.layerMeans.prefix(layerCount).enumerated() {
                layerMeans[i].forward += t.forward / n
                layerMeans[i].backward += t.backward / n
                layerMeans[i].forwardGemm += t.forwardGemm / n
                layerMeans[i].backwardGemm += t.backwardGemm / n
            }
            let records = timings.steps
            func mean(_ f: (StepTimes) -> Double) -> Double {
                records.isEmpty ? 0 : records.map(f).reduce(0, +) / Double(records.count)
            }
            var rank = Rank(rank: r, host: r < env.hosts.count ? env.hosts[r] : "?", stepSeconds: Summary(records.map(\.wall)),
                            data: mean(\.data), forward: mean(\.forward), backward: mean(\.backward),
                            optimizer: mean(\.optimizer), allreduce: mean(\.allreduce), exposed: mean(\.exposed),
                            peakRssBytes: timings.peakRssBytes,
                            rssAtStep100Bytes: timings.residentAtStep100 > 0 ? timings.residentAtStep100 : nil,
                            rssAtEndBytes: timings.residentAtEnd > 0 ? timings.residentAtEnd : nil, steps: records)
            rank.peakPssBytes = timings.peakPssBytes > 0 ? timings.peakPssBytes : nil
            rank.privateBytes = timings.privateBytes > 0 ? timings.privateBytes : nil
            rank.exchangeBytesPerStep = config.mode.hasBackward ? timings.exchangeBytesPerStep : nil
            if config.compression != nil && config.mode.hasBackward {
                rank.fp32BytesPerStep = timings.fp32BytesPerStep
                rank.compression = mean { $0.compression ?? 0 }
            }
            ranks.append(rank)
        }
        let slowest = ranks.max { $0.stepSeconds.mean < $1.stepSeconds.mean }!
        let meanOfMeans = ranks.map(\.stepSeconds.mean).reduce(0, +) / Double(ranks.count)
        let globalBatch = config.batchPerRank * jobRanks
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
            let fwd = layerMeans[i].forward, bwd = layerMeans[i].backward
            let fflops = s.forwardMACsPerImage * 2 * config.batchPerRank
            let bflops = config.mode.hasBackward ? fflops * (i == 0 ? 1 : 2) : 0
            layers.append(Layer(name: s.name, forwardSeconds: fwd, backwardSeconds: bwd,
                                forwardGemmSeconds: layerMeans[i].forwardGemm,
                                backwardGemmSeconds: layerMeans[i].backwardGemm,
                                forwardFlops: fflops, backwardFlops: bflops,
                                forwardGflopsPerSecond: fwd > 0 ? Double(fflops) / fwd / 1e9 : 0,
                                backwardGflopsPerSecond: bwd > 0 ? Double(bflops) / bwd / 1e9 : 0))
        }
        let rank0Buckets = all.first?.bucketMeans ?? []
        let buckets = plan.buckets.enumerated().map { b, e in
            BucketRecord(bucket: e, layerNames: e.layers.map { specs[$0].name },
                         allreduceSeconds: b < rank0Buckets.count ? rank0Buckets[b] : 0)
        }
        var report = RunReport(
            complete: complete, startedAt: startedAt, command: command,
            model: spec.model, imageSize: spec.imageSize, classes: spec.classes, widthDivisor: spec.widthDivisor,
            mode: config.mode, objective: config.mode.hasBackward ? config.objective.rawValue : nil,
            ranks: jobRanks, batchPerRank: config.batchPerRank, globalBatch: globalBatch,
            warmup: config.warmup, steps: config.steps, seed: config.seed,
            parameters: spec.parameterCount, forwardFlopsPerImage: spec.forwardFLOPsPerImage, stepFlopsPerImage: stepFlops,
            hosts: env.hosts, blasThreads: env.blasThreads, blasCore: env.blasCore, blasConfig: env.blasConfig,
            openblasCoretype: env.openblasCoretype, blasKernelChoice: env.blasKernelChoice, mpiLibrary: env.mpiLibrary, mpiThreadLevel: env.mpiThreadLevel,
            overlap: config.overlap, commWait: env.commWait, bucketMb: config.bucketMB, buckets: buckets,
            stepSeconds: slowest.stepSeconds, imagesPerSecond: imagesPerSecond, gflopsPerSecond: gflops,
            gflopsPerSecondPerRank: gflops / Double(jobRanks),
            stragglerRatio: meanOfMeans > 0 ? slowest.stepSeconds.mean / meanOfMeans : 1,
            allreduceSecondsPerStep: ranks.map(\.allreduce).reduce(0, +) / Double(ranks.count),
            exposedSecondsPerStep: ranks.map(\.exposed).reduce(0, +) / Double(ranks.count),
            lossPerStep: lossPerStep, parameterChecksum: Checksum.hex(checksum),
            peakRssBytes: ranks.map(\.peakRssBytes).max() ?? 0, perRank: ranks, layers: layers)
        report.conv = config.convAlgorithm
        report.allreduceDtype = config.allreduceDType
        report.convPerLayer = specs.compactMap { s -> ConvChoice? in
            guard case let .conv(name, c, _, h, w) = s else { return nil }
            return ConvChoice(layer: name, algorithm: config.convAlgorithm.resolved(inChannels: c, height: h, width: w))
        }
        report.peakGflopsPerRank = peak
        report.skippedSteps = all.first?.skippedSteps
        report.peakShare = peak > 0 ? report.gflopsPerSecondPerRank / peak : nil
        report.exchange = config.mode.hasBackward ? (config.exchange == .hostShared ? .hostShared : .allreduce) : nil
        let shared = all.map(\.sharedBytesPerHost).max() ?? 0
        report.sharedBytesPerHost = shared > 0 ? shared : nil
        let pss = ranks.compactMap(\.peakPssBytes)
        report.peakPssBytesSum = pss.count == ranks.count && !pss.isEmpty ? pss.reduce(0, +) : nil
        report.coresPerHost = ProcessInfo.processInfo.activeProcessorCount
        report.restarts = restarts
        report.memory = MemoryPlan(config: config).report
        if let c = config.compression, config.mode.hasBackward {
            report.compression = c.description
            report.compressionSecondsPerStep = slowest.compression
            if let first = ranks.first, let sent = first.exchangeBytesPerStep, let fp32 = first.fp32BytesPerStep, sent > 0 {
                report.compressionRatio = Double(fp32) / Double(sent)
            }
        }
        return report
    }
}
