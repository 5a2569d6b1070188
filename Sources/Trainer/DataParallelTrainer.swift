import Comm
import Foundation
import VGGEngine

/// Times of one step on one rank, seconds.
public struct StepTimes: Codable, Equatable, Sendable {
    public var wall = 0.0
    public var data = 0.0
    public var forward = 0.0
    public var backward = 0.0
    /// Optimizer, including the waits for buckets still in flight.
    public var optimizer = 0.0
    /// Time the communication spent in allreduce (busy, overlapped or not).
    public var allreduce = 0.0
    /// Time the compute thread waited for communication.
    public var exposed = 0.0
    public var loss = 0.0

    static let fields = 8
    var packed: [Double] { [wall, data, forward, backward, optimizer, allreduce, exposed, loss] }
    public init() {}
    init(packed p: ArraySlice<Double>) {
        let v = Array(p)
        wall = v[0]; data = v[1]; forward = v[2]; backward = v[3]
        optimizer = v[4]; allreduce = v[5]; exposed = v[6]; loss = v[7]
    }
}

/// Every rank holds a full replica, trains on its own contiguous shard of
/// each global batch, and averages gradients with bucketed allreduce that
/// overlaps backward. The model knows nothing of MPI: the hook between them
/// is `Network.backward(gradientsReady:)`.
public final class DataParallelTrainer {
    public let config: TrainConfig
    public let world: World
    public let network: Network
    public let plan: BucketPlan
    public let blasThreads: Int
    let velocity: FloatArena?
    let allreducer: BucketAllreducer?
    let data: SyntheticData
    /// Gradients still missing per bucket in the current backward.
    var remaining: [Int]
    let bucketSize: [Int]

    public private(set) var records: [StepTimes] = []
    public private(set) var layerForward: [Double]
    public private(set) var layerBackward: [Double]
    public private(set) var layerForwardGemm: [Double]
    public private(set) var layerBackwardGemm: [Double]
    /// Per bucket, summed over timed steps: allreduce seconds.
    public private(set) var bucketSeconds: [Double]
    /// Per bucket, the last step's allreduce start and end (Clock seconds).
    var bucketStart: [Double]
    var bucketEnd: [Double]
    /// sgemm GFLOP/s measured at start with this rank's thread count.
    public let peakGflops: Double
    /// Timeline of the timed steps (see Timeline), when recording.
    public private(set) var timeline: [Double] = []
    /// Clock time all ranks agree is zero (taken right after a barrier).
    var origin = 0.0

    /// The data-parallel group this trainer belongs to: the world, or this
    /// rank alone (`solo`, for single-rank reference runs inside an MPI job).
    public let rank: Int
    public let ranks: Int
    public var globalBatch: Int { config.batchPerRank * ranks }
    public var firstSample: Int { config.batchPerRank * rank }

    public init(config: TrainConfig, world: World, blasThreads: Int, solo: Bool = false) throws {
        try config.validate()
        self.config = config
        self.world = world
        rank = solo ? 0 : world.rank
        ranks = solo ? 1 : world.size
        self.blasThreads = blasThreads
        BLAS.setThreads(blasThreads)
        peakGflops = config.peakProbe ? BLAS.peakGFLOPS(n: 1024, repeats: 3).gflops : 0
        network = try Network(spec: config.network, batch: config.batchPerRank,
                              keepProbability: config.keepProbability, seed: config.seed,
                              workspaceBudget: config.workspaceFloats)
        velocity = config.mode == .train ? FloatArena(count: network.parameters.count) : nil
        plan = BucketPlan(spec: config.network, bucketMB: config.bucketMB)
        data = SyntheticData(seed: config.seed, classes: config.network.classes,
                             imageSize: config.network.imageSize, datasetSize: config.datasetSize)

        // Every rank must issue the same allreduces in the same order.
        if ranks > 1 {
            let prints = world.allgather(plan.fingerprint)
            if let bad = prints.firstIndex(where: { $0 != prints[0] }) {
                throw TrainerError.failed("bucket plans differ between rank 0 and rank \(bad): all ranks must run the same model and --bucket-mb")
            }
        }

        if ranks > 1 && config.mode.hasBackward && config.overlap {
            allreducer = try BucketAllreducer(world: world, base: network.gradients.base, buckets: plan.commBuckets,
                                              wait: Self.commWait(config, world: world, blasThreads: blasThreads))
        } else {
            allreducer = nil
        }
        bucketSize = plan.buckets.map { $0.layers.count }
        remaining = bucketSize
        layerForward = Array(repeating: 0, count: network.layers.count)
        layerBackward = Array(repeating: 0, count: network.layers.count)
        layerForwardGemm = layerForward
        layerBackwardGemm = layerForward
        bucketSeconds = Array(repeating: 0, count: plan.buckets.count)
        bucketStart = bucketSeconds
        bucketEnd = bucketSeconds
        records.reserveCapacity(config.steps)
        if config.recordTimeline {
            timeline.reserveCapacity(config.steps * Timeline.stride(layers: network.layers.count, buckets: plan.buckets.count))
        }
    }

    deinit { allreducer?.stop() }

    public static func commWait(_ config: TrainConfig, world: World, blasThreads: Int) -> CommWait {
        switch config.commWait {
        case .blocking: return .blocking
        case .polling: return .polling(microseconds: config.pollMicroseconds)
        case .auto:
            let busy = world.localSize * (blasThreads + 1)
            return busy > ProcessInfo.processInfo.activeProcessorCount
                ? .polling(microseconds: config.pollMicroseconds) : .blocking
        }
    }

    public var commWaitDescription: String { allreducer?.waitMode.description ?? "none" }

    public func shutdown() { allreducer?.stop() }

    /// One step: data, forward, objective, backward with overlapped
    /// allreduce, then the optimizer bucket by bucket as buckets arrive.
    @discardableResult
    public func step(_ t: Int) -> StepTimes {
        var times = StepTimes()
        for b in bucketStart.indices { bucketStart[b] = 0; bucketEnd[b] = 0 }
        let context = StepContext(step: t, firstSample: firstSample, globalBatch: globalBatch,
                                  training: config.mode != .forward)
        let t0 = Clock.now()
        data.fill(images: network.images, labels: network.labels, step: t,
                  first: firstSample, count: config.batchPerRank, globalBatch: globalBatch)
        let t1 = Clock.now()
        network.forward(context: context)
        let t2 = Clock.now()
        times.data = t1 - t0
        times.forward = t2 - t1
        guard config.mode.hasBackward else {
            times.wall = t2 - t0
            return times
        }

        times.loss = network.loss(config.objective)
        let t3 = Clock.now()
        times.forward += t3 - t2
        let communicate = ranks > 1
        if let comm = allreducer {
            comm.beginStep()
            for b in remaining.indices { remaining[b] = bucketSize[b] }
            network.backward(context: context) { layer in
                guard let b = self.plan.bucketOfLayer[layer] else { return }
                self.remaining[b] -= 1
                if self.remaining[b] == 0 { comm.submit(b) }
            }
        } else {
            network.backward(context: context)
        }
        let t4 = Clock.now()
        times.backward = t4 - t3

        // Gradients are summed over ranks; 1/N makes the sum a mean.
        let scale = 1 / Float(ranks)
        for (b, bucket) in plan.buckets.enumerated() {
            if let comm = allreducer {
                comm.wait(b)
            } else if communicate {
                let c0 = Clock.now()
                world.allreduceSum(network.gradients.base + bucket.slice.offset, count: bucket.slice.count)
                bucketStart[b] = c0
                bucketEnd[b] = Clock.now()
                let c = bucketEnd[b] - c0
                times.allreduce += c
                times.exposed += c
                bucketSeconds[b] += c
            }
            if let v = velocity {
                config.optimizer.step(parameters: network.parameters, gradients: network.gradients,
                                      velocity: v, slice: bucket.slice, gradientScale: scale)
            }
        }
        if let comm = allreducer {
            for b in plan.buckets.indices {
                bucketStart[b] = comm.startTimes[b]
                bucketEnd[b] = comm.endTimes[b]
                let c = comm.endTimes[b] - comm.startTimes[b]
                times.allreduce += c
                bucketSeconds[b] += c
            }
            times.exposed = comm.exposedWait
        }
        let t5 = Clock.now()
        times.optimizer = t5 - t4
        times.wall = t5 - t0
        return times
    }

    /// One timed step's events, relative to `origin`: step start and length,
    /// then per layer forward start/length and backward start/length, then per
    /// bucket allreduce start/length (start −1 when it did not run).
    func appendTimeline(stepStart: Double, wall: Double) {
        timeline.append(stepStart - origin)
        timeline.append(wall)
        for l in network.layers.indices {
            timeline.append(network.forwardStart[l] - origin)
            timeline.append(network.forwardSeconds[l])
            let ran = config.mode.hasBackward
            timeline.append(ran ? network.backwardStart[l] - origin : -1)
            timeline.append(ran ? network.backwardSeconds[l] : 0)
        }
        for b in bucketStart.indices {
            timeline.append(bucketEnd[b] > 0 ? bucketStart[b] - origin : -1)
            timeline.append(bucketEnd[b] - bucketStart[b])
        }
    }

    /// What this rank measured, for the report.
    public var timings: RankTimings {
        RankTimings(steps: records, layerMeans: layerForward + layerBackward + layerForwardGemm + layerBackwardGemm,
                    bucketMeans: bucketSeconds, peakRssBytes: peakResidentBytes(), peakGflops: peakGflops,
                    timeline: timeline)
    }

    /// The environment as this rank sees it.
    public var environment: RunEnvironment {
        RunEnvironment(hosts: world.hostNames, blasThreads: blasThreads, blasCore: BLAS.coreName, blasConfig: BLAS.config,
                       openblasCoretype: ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"],
                       mpiLibrary: World.libraryVersion, mpiThreadLevel: world.threadLevel.description,
                       commWait: commWaitDescription)
    }

    /// Compares every rank's parameter checksum; throws naming the ranks
    /// that differ from rank 0.
    public func checkReplicas(step: Int) throws -> UInt64 {
        let mine = Checksum.of(network.parameters)
        guard ranks > 1 else { return mine }
        let all = world.allgather(mine)
        let differ = all.indices.filter { all[$0] != all[0] }
        if !differ.isEmpty {
            throw TrainerError.failed("replicas diverged at step \(step): rank(s) \(differ.map(String.init).joined(separator: ", ")) differ from rank 0 (checksums \(all.map(Checksum.hex).joined(separator: " ")))")
        }
        return mine
    }

    /// Warm-up steps, then timed steps. `progress` gets the notebook's line
    /// for every 10th timed step (rank 0 prints it).
    public func run(progress: (Int, StepTimes) -> Void = { _, _ in }) throws -> UInt64 {
        records.removeAll(keepingCapacity: true)
        timeline.removeAll(keepingCapacity: true)
        if ranks > 1 { world.barrier() }
        origin = Clock.now()
        for i in 0..<(config.warmup + config.steps) {
            let stepStart = Clock.now()
            let times = step(i)
            if i >= config.warmup {
                let timed = i - config.warmup
                records.append(times)
                if config.recordTimeline { appendTimeline(stepStart: stepStart, wall: times.wall) }
                for l in layerForward.indices {
                    layerForward[l] += network.forwardSeconds[l]
                    layerForwardGemm[l] += network.forwardGemmSeconds[l]
                    if config.mode.hasBackward {
                        layerBackward[l] += network.backwardSeconds[l]
                        layerBackwardGemm[l] += network.backwardGemmSeconds[l]
                    }
                }
                if timed % 10 == 0 { progress(timed, times) }
            } else {
                for b in bucketSeconds.indices { bucketSeconds[b] = 0 }
            }
            if let k = config.checkEvery, (i + 1) % k == 0 { _ = try checkReplicas(step: i) }
        }
        let n = Double(max(config.steps, 1))
        for l in layerForward.indices {
            layerForward[l] /= n; layerBackward[l] /= n
            layerForwardGemm[l] /= n; layerBackwardGemm[l] /= n
        }
        for b in bucketSeconds.indices { bucketSeconds[b] /= n }
        return try checkReplicas(step: config.warmup + config.steps - 1)
    }
}
