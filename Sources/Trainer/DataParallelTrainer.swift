import Comm
import Foundation
import Reports
import VGGEngine
import Vocabulary

/// Every rank of `group` holds a full replica, trains on its own contiguous
/// shard of each global batch, and hands its gradients to a
/// `GradientExchange`, which averages them over the group and applies the
/// update. The model knows nothing of MPI: the hook between them is
/// `Network.backward(gradientsReady:)`.
public final class DataParallelTrainer {
    public let config: TrainConfig
    /// The data-parallel group: the job's ranks, or a one-rank group.
    public let group: World
    public let network: Network
    public let plan: BucketPlan
    public let blasThreads: Int
    /// sgemm GFLOP/s measured at start with this rank's thread count.
    public let peakGflops: Double
    let velocity: FloatArena?
    let data: SyntheticData
    /// nil in forward mode: nothing to exchange.
    let exchange: GradientExchange?
    /// PowerSGD's state, with --compression powersgd.
    let compressor: PowerSGD?
    /// The host's shared replica, with --exchange host-shared.
    let replica: HostReplica?
    /// Turns hangs into errors (multi-rank runs with a timeout).
    let watchdog: Watchdog?
    let recorder: StepRecorder
    let faults: FaultInjector
    let checkpoints: Checkpointing
    /// The first step `run` executes (after a resume, the checkpoint's).
    public private(set) var startStep = 0
    /// Steps whose update was skipped for a non-finite gradient.
    public private(set) var skippedSteps: [Int] = []
    /// Steps `run` executed (warm-up included).
    private(set) var stepsRun = 0

    public var globalBatch: Int { config.batchPerRank * group.size }
    public var firstSample: Int { config.batchPerRank * group.rank }

    public init(config: TrainConfig, group: World, blasThreads: Int) throws {
        try config.validate()
        self.config = config
        self.group = group
        self.blasThreads = blasThreads
        BLAS.setThreads(blasThreads)
        peakGflops = config.peakProbe ? BLAS.peakGFLOPS(n: 1024, repeats: 3).gflops : 0
        plan = BucketPlan(spec: config.network, bucketMB: config.bucketMB)
        replica = try Self.usesHostShared(config, group: group)
            ? HostReplica(group: group, plan: plan, parameterCount: config.network.parameterCount, withMomentum: config.mode == .train)
            : nil
        network = try Network(spec: config.network, batch: config.batchPerRank, purpose: config.mode.hasBackward ? .training : .inference,
                              keepProbability: config.keepProbability, seed: config.seed,
                              workspaceBudget: config.workspaceFloats, convAlgorithm: config.convAlgorithm,
                              storage: replica?.storage)
        if config.initScheme != .glorot && (replica?.localRank ?? 0) == 0 {
            network.initializeParameters(seed: config.seed, scheme: config.initScheme)
        }
        try replica?.memory.synchronize()  // the host's parameters are written before anyone reads them
        velocity = replica?.momentum ?? (config.mode == .train ? FloatArena(count: network.parameters.count) : nil)
        data = SyntheticData(seed: config.seed, classes: config.network.classes,
                             imageSize: config.network.imageSize, datasetSize: config.datasetSize)

        // Every rank must issue the same allreduces in the same order.
        if group.size > 1 {
            let prints = try group.allgather(plan.fingerprint)
            if let bad = prints.firstIndex(where: { $0 != prints[0] }) {
                throw TrainerError.failed("bucket plans differ between rank 0 and rank \(bad): all ranks must run the same model and --bucket-mb")
            }
        }
        if group.size > 1 && config.timeout > 0 && group.threadLevel == .multiple {
            let names = plan.buckets.map { $0.layers.map { config.network.layers[$0].name } }
            watchdog = try Watchdog(world: group, timeout: config.timeout) { id in
                id < names.count ? "allreduce of bucket \(id) (\(names[id].joined(separator: ", ")))" : TrainerCollective.describe(id)
            }
        } else {
            watchdog = nil
        }
        if let settings = config.compression {
            // host-shared compresses what crosses hosts: this rank's piece of each bucket.
            let buckets: [Bucket]
            if let r = replica { buckets = HostSharedExchange.pieceBuckets(plan: plan, slice: r.slice) } else { buckets = plan.buckets }
            compressor = PowerSGD(layers: config.network.layers, slices: network.layers.map(\.parameterSlice),
                                  buckets: buckets, settings: settings, seed: config.seed)
        } else {
            compressor = nil
        }
        exchange = config.mode.hasBackward ? try Self.makeExchange(config, group: group, network: network, plan: plan,
                                                                   velocity: velocity, replica: replica, watchdog: watchdog,
                                                                   compressor: compressor) : nil
        recorder = StepRecorder(layers: network.layers.count, buckets: plan.buckets.count, steps: config.steps,
                                hasBackward: config.mode.hasBackward, keepsTimeline: config.recordTimeline)
        faults = FaultInjector(fault: config.fault, rank: group.rank)
        checkpoints = try Checkpointing(group: group, config: config, watchdog: watchdog, replica: replica,
                                        compressor: compressor)
    }

    /// Whether this configuration runs one replica per host (see `HostReplica.resolve`).
    public static func usesHostShared(_ config: TrainConfig, group: World) throws -> Bool {
        try HostReplica.resolve(config.exchange, group: group, mode: config.mode, compressed: config.compression != nil)
    }

    /// The exchange this configuration asks for.
    static func makeExchange(_ config: TrainConfig, group: World, network: Network, plan: BucketPlan,
                             velocity: FloatArena?, replica: HostReplica?, watchdog: Watchdog?,
                             compressor: PowerSGD? = nil) throws -> GradientExchange {
        if let replica {
            return try HostSharedExchange(replica: replica, network: network, plan: plan, config: config, ranks: group.size,
                                          watchdog: watchdog, compressor: compressor)
        }
        let update = BucketUpdate(network: network, velocity: velocity, optimizer: config.optimizer, ranks: group.size,
                                  skipNonfinite: config.skipNonfinite)
        if group.size > 1 && config.overlap {
            return try OverlappedAllreduce(group: group, network: network, plan: plan, update: update,
                                           dtype: config.allreduceDType, wait: config.commWait,
                                           pollMicroseconds: config.pollMicroseconds, watchdog: watchdog,
                                           compressor: compressor)
        }
        return InlineAllreduce(group: group, network: network, plan: plan, update: update,
                               dtype: config.allreduceDType, wait: config.commWait,
                               pollMicroseconds: config.pollMicroseconds, watchdog: watchdog, compressor: compressor)
    }

    deinit { exchange?.stop() }

    /// Which exchange runs: allreduce or host-shared (nil in forward mode).
    public var exchangeKind: ExchangeChoice? {
        exchange == nil ? nil : replica == nil ? .allreduce : .hostShared
    }
    /// Where and when gradients travel, for the layout line ("none" in forward mode).
    public var exchangeDescription: String { exchange?.description ?? "none" }
    /// How the exchange's allreduces are waited for ("none" when it sends nothing), for the report.
    public var commWaitDescription: String { exchange?.waitDescription ?? "none" }

    /// Stops the helper threads and releases the host's shared window and
    /// every communicator the trainer split off; every rank must call it,
    /// after the last collective and the last read of the parameters, and
    /// before MPI_Finalize.
    public func shutdown() {
        exchange?.stop()
        watchdog?.stop()
        checkpoints.free()
        replica?.free()
    }

    /// One step: data, forward, objective, backward (the exchange hears of
    /// each layer's gradients as they are final), then the exchange's update.
    public func step(_ t: Int) throws -> (times: StepTimes, nonfinite: NonfiniteGradient?) {
        var times = StepTimes()
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
        guard let exchange else {
            times.wall = t2 - t0
            return (times, nil)
        }
        times.loss = network.loss(config.objective)
        let t3 = Clock.now()
        times.forward += t3 - t2

        exchange.beginStep(t)
        network.backward(context: context) { layer in
            self.faults.poison(step: t, layer: layer, network: self.network)
            exchange.layerReady(layer)
        }
        let t4 = Clock.now()
        times.backward = t4 - t3

        let nonfinite = try exchange.finish(step: t, times: &times)
        let t5 = Clock.now()
        times.optimizer = t5 - t4
        times.wall = t5 - t0
        return (times, nonfinite)
    }

    /// Compares every rank's parameter checksum; throws naming the ranks
    /// that differ from rank 0.
    public func checkReplicas(step: Int) throws -> UInt64 {
        let mine = Checksum.of(network.parameters)
        guard group.size > 1 else { return mine }
        watchdog?.announce(step: step, id: TrainerCollective.replicaCheck.rawValue)
        let all = try group.allgather(mine)
        watchdog?.completed()
        let differ = all.indices.filter { all[$0] != all[0] }
        if !differ.isEmpty {
            throw TrainerError.failed("replicas diverged at step \(step): rank(s) \(differ.map(String.init).joined(separator: ", ")) differ from rank 0 (checksums \(all.map(Checksum.hex).joined(separator: " ")))")
        }
        return mine
    }

    /// Loads the checkpoint in `folder` on every rank (rank 0 reads it).
    public func resume(from folder: String) throws {
        guard let velocity else { throw TrainerError.usage("--resume needs --mode train") }
        let next = try checkpoints.resume(from: folder, parameters: network.parameters, momentum: velocity)
        let total = config.warmup + config.steps
        guard next < total else {
            throw TrainerError.usage(next == total
                ? "the checkpoint in \(folder) is at step \(next): this run's \(total) steps are already done; nothing to do (raise --steps to train further)"
                : "the checkpoint is at step \(next), past this run's \(total) steps")
        }
        startStep = next
    }

    /// Warm-up steps, then timed steps, from `startStep`. `progress` gets the
    /// notebook's line for every 10th timed step (rank 0 prints it).
    public func run(progress: (Int, StepTimes) -> Void = { _, _ in }) throws -> UInt64 {
        if group.size > 1 { try group.barrier() }
        recorder.start(origin: Clock.now())
        let total = config.warmup + config.steps
        var last = startStep - 1
        for i in startStep..<total {
            faults.beforeStep(i)
            let stepStart = Clock.now()
            let (times, nonfinite) = try step(i)
            last = i
            stepsRun += 1
            if let bad = nonfinite {
                guard config.skipNonfinite else {
                    throw TrainerError.failed("non-finite gradient (NaN or Inf) at step \(i) in layer \(config.network.layers[bad.layer].name) (bucket \(bad.bucket)); loss on rank \(group.rank) was \(times.loss); rerun with --skip-nonfinite to skip such updates")
                }
                skippedSteps.append(i)
            }
            if i >= config.warmup {
                let timed = i - config.warmup
                recorder.record(times, timed: timed, stepStart: stepStart, network: network, exchange: exchange)
                if timed % 10 == 0 { progress(timed, times) }
            } else {
                recorder.discardWarmup()
            }
            if let k = config.checkEvery, (i + 1) % k == 0 { _ = try checkReplicas(step: i) }
            if let dir = config.checkpointDir, let k = config.checkpointEvery, (i + 1) % k == 0, let v = velocity {
                try checkpoints.save(to: dir, nextStep: i + 1, parameters: network.parameters, momentum: v)
            }
        }
        recorder.close()
        return try checkReplicas(step: last)
    }
}
