import Comm
import Foundation
import Reports
import VGGEngine
import Vocabulary

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
    /// 16-bit copy of the largest bucket for allreduces on the compute thread.
    let staging: UnsafeMutablePointer<UInt16>?
    /// Turns hangs into errors (multi-rank runs with a timeout).
    let watchdog: Watchdog?
    /// The first step `run` executes (after a resume, the checkpoint's).
    public private(set) var startStep = 0
    /// Steps whose update was skipped for a non-finite gradient.
    public private(set) var skippedSteps: [Int] = []
    /// Resident memory at the 100th timed step and at the end, bytes.
    public private(set) var residentAtStep100 = 0
    public private(set) var residentAtEnd = 0
    /// Guards `records` against the signal handler's snapshot.
    let recordsLock = NSLock()

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
                              workspaceBudget: config.workspaceFloats, convAlgorithm: config.convAlgorithm)
        if config.initScheme != .glorot { network.initializeParameters(seed: config.seed, scheme: config.initScheme) }
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
            allreducer = try BucketAllreducer(world: world, base: network.gradients.base, buckets: plan.buckets,
                                              wait: Self.commWait(config, world: world, blasThreads: blasThreads),
                                              dtype: config.allreduceDType)
        } else {
            allreducer = nil
        }
        if ranks > 1 && config.timeout > 0 && world.threadLevel == .multiple {
            let names = plan.buckets.map { $0.layers.map { config.network.layers[$0].name } }
            watchdog = Watchdog(world: world, timeout: config.timeout) { id in
                id < names.count ? "allreduce of bucket \(id) (\(names[id].joined(separator: ", ")))" : Collective.describe(id)
            }
            allreducer?.watchdog = watchdog
        } else {
            watchdog = nil
        }
        staging = allreducer == nil && ranks > 1 && config.allreduceDType != .fp32
            ? .allocate(capacity: max(plan.buckets.map(\.slice.count).max() ?? 1, 1)) : nil
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

    deinit {
        allreducer?.stop()
        staging?.deallocate()
    }

    /// Ids of the collectives other than bucket allreduces, for the watchdog.
    enum Collective: Int {
        case replicaCheck = 10_000, resume, gather
        static func describe(_ id: Int) -> String {
            switch Collective(rawValue: id) {
            case .replicaCheck: return "the replica checksum comparison"
            case .resume: return "the checkpoint broadcast"
            case .gather: return "the gather of timings at rank 0"
            case nil: return "collective \(id)"
            }
        }
    }

    /// Runs `body` (a collective) under the watchdog's eye.
    func collective<T>(_ c: Collective, step: Int, _ body: () throws -> T) rethrows -> T {
        watchdog?.announce(step: step, id: c.rawValue)
        defer { watchdog?.completed() }
        return try body()
    }

    public static func commWait(_ config: TrainConfig, world: World, blasThreads: Int) -> CommWait {
        switch config.commWait {
        case .blocking: return .blocking
        case .polling: return .polling(microseconds: config.pollMicroseconds)
        }
    }

    public var commWaitDescription: String { allreducer?.waitMode.description ?? "none" }

    /// Stops the helper threads; every rank must call it, after the last collective.
    public func shutdown() {
        allreducer?.stop()
        watchdog?.stop()
    }


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
        // An injected NaN goes into this rank's first gradient before anyone sees it.
        let poison = config.fault.map { $0.kind == .nan && $0.step == t && $0.rank == world.rank } ?? false
        if let comm = allreducer {
            comm.beginStep(t)
            for b in remaining.indices { remaining[b] = bucketSize[b] }
            network.backward(context: context) { layer in
                if poison && layer == self.network.layers.count - 1 {
                    self.network.gradients[self.network.layers[layer].parameterSlice.offset] = .nan
                }
                guard let b = self.plan.bucketOfLayer[layer] else { return }
                self.remaining[b] -= 1
                if self.remaining[b] == 0 { comm.submit(b) }
            }
        } else {
            network.backward(context: context)
            if poison { network.gradients[network.layers[network.layers.count - 1].parameterSlice.offset] = .nan }
        }
        let t4 = Clock.now()
        times.backward = t4 - t3

        // Gradients are summed over ranks; 1/N makes the sum a mean. Every
        // rank holds the same sums, so every rank reaches the same verdict on
        // a non-finite gradient without talking. To skip a step's update, all
        // buckets are checked before any is applied; otherwise each bucket is
        // applied as soon as it has arrived.
        let scale = 1 / Float(ranks)
        var nonfinite: Int? = nil
        let applyAsTheyArrive = !config.skipNonfinite
        for (b, bucket) in plan.buckets.enumerated() {
            if let comm = allreducer {
                comm.wait(b)
            } else if communicate {
                let c0 = Clock.now()
                watchdog?.announce(step: t, id: b)
                world.allreduceSum(network.gradients.base + bucket.slice.offset, count: bucket.slice.count,
                                   dtype: config.allreduceDType, staging: staging)
                watchdog?.completed()
                bucketStart[b] = c0
                bucketEnd[b] = Clock.now()
                let c = bucketEnd[b] - c0
                times.allreduce += c
                times.exposed += c
                bucketSeconds[b] += c
            }
            if nonfinite == nil && !isFinite(bucket.slice) { nonfinite = b }
            if applyAsTheyArrive && nonfinite == nil, let v = velocity {
                config.optimizer.step(parameters: network.parameters, gradients: network.gradients,
                                      velocity: v, slice: bucket.slice, gradientScale: scale)
            }
        }
        if let b = nonfinite {
            times.nonfiniteBucket = b
        } else if !applyAsTheyArrive, let v = velocity {
            for bucket in plan.buckets {
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

    /// True when a slice of the gradient arena holds no NaN or Inf.
    /// (x − x is 0 for finite x and NaN otherwise; the sum vectorises.)
    func isFinite(_ slice: ArenaSlice) -> Bool {
        let g = network.gradients.base + slice.offset
        let n = slice.count
        // Eight independent SIMD accumulators: one pass at memory speed.
        var acc = SIMD8<Float>(repeating: 0)
        var i = 0
        let raw = UnsafeRawPointer(g)
        while i + 8 <= n {
            let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            acc += v - v
            i += 8
        }
        var tail: Float = 0
        while i < n { tail += g[i] - g[i]; i += 1 }
        return acc == SIMD8<Float>(repeating: 0) && tail == 0
    }

    /// The first layer of bucket b, in forward order, whose gradient is not finite.
    func nonfiniteLayer(bucket b: Int) -> String {
        let specs = config.network.layers
        for l in plan.buckets[b].layers.sorted() {
            let s = network.layers[l].parameterSlice
            if !isFinite(s) { return specs[l].name }
        }
        return plan.buckets[b].layers.map { specs[$0].name }.joined(separator: "/")
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
        var t = RankTimings(steps: recordsSnapshot(), layerMeans: layerForward + layerBackward + layerForwardGemm + layerBackwardGemm,
                            bucketMeans: bucketSeconds, peakRssBytes: peakResidentBytes(), peakGflops: peakGflops,
                            timeline: timeline)
        t.residentAtStep100 = residentAtStep100
        t.residentAtEnd = residentAtEnd
        t.skippedSteps = skippedSteps.count
        return t
    }

    /// The environment as this rank sees it.
    public var environment: RunEnvironment {
        RunEnvironment(hosts: world.hostNames, blasThreads: blasThreads, blasCore: BLAS.coreName, blasConfig: BLAS.config,
                       openblasCoretype: BLASKernel.choiceNote == nil ? ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] : nil,
                       blasKernelChoice: BLASKernel.choiceNote,
                       mpiLibrary: World.libraryVersion, mpiThreadLevel: world.threadLevel.description,
                       commWait: commWaitDescription)
    }

    /// Compares every rank's parameter checksum; throws naming the ranks
    /// that differ from rank 0.
    public func checkReplicas(step: Int) throws -> UInt64 {
        let mine = Checksum.of(network.parameters)
        guard ranks > 1 else { return mine }
        let all = collective(.replicaCheck, step: step) { world.allgather(mine) }
        let differ = all.indices.filter { all[$0] != all[0] }
        if !differ.isEmpty {
            throw TrainerError.failed("replicas diverged at step \(step): rank(s) \(differ.map(String.init).joined(separator: ", ")) differ from rank 0 (checksums \(all.map(Checksum.hex).joined(separator: " ")))")
        }
        return mine
    }

    /// Loads the checkpoint in `folder`: rank 0 reads and verifies it, then
    /// broadcasts parameters, momentum and the next step to every rank.
    public func resume(from folder: String) throws {
        guard let velocity else { throw TrainerError.usage("--resume needs --mode train") }
        var status: [UInt8] = []
        var next = 0
        if world.isRoot || ranks == 1 {
            do {
                let header = try Checkpoint.read(from: folder, parameters: network.parameters, momentum: velocity)
                try Checkpoint.check(header, against: config, ranks: ranks)
                next = header.nextStep
            } catch {
                status = Array("\(error)".utf8)
            }
        }
        if ranks > 1 {
            collective(.resume, step: 0) {
                world.broadcast(&status)
                if status.isEmpty {
                    var step = [UInt8](withUnsafeBytes(of: Int64(next)) { Array($0) })
                    world.broadcast(&step)
                    next = Int(step.withUnsafeBytes { $0.load(as: Int64.self) })
                    world.broadcast(network.parameters.base, count: network.parameters.count)
                    world.broadcast(velocity.base, count: velocity.count)
                }
            }
        }
        if !status.isEmpty { throw TrainerError.usage(String(decoding: status, as: UTF8.self)) }
        guard next <= config.warmup + config.steps else {
            throw TrainerError.usage("the checkpoint is at step \(next), past this run's \(config.warmup + config.steps) steps")
        }
        startStep = next
    }

    /// Warm-up steps, then timed steps, from `startStep`. `progress` gets the
    /// notebook's line for every 10th timed step (rank 0 prints it).
    public func run(progress: (Int, StepTimes) -> Void = { _, _ in }) throws -> UInt64 {
        recordsLock.lock()
        records.removeAll(keepingCapacity: true)
        recordsLock.unlock()
        timeline.removeAll(keepingCapacity: true)
        if ranks > 1 { world.barrier() }
        origin = Clock.now()
        let total = config.warmup + config.steps
        var last = startStep - 1
        for i in startStep..<total {
            injectFault(at: i)
            let stepStart = Clock.now()
            let times = step(i)
            last = i
            if let b = times.nonfiniteBucket {
                let layer = nonfiniteLayer(bucket: b)
                guard config.skipNonfinite else {
                    throw TrainerError.failed("non-finite gradient (NaN or Inf) at step \(i) in layer \(layer) (bucket \(b)); loss on rank \(world.rank) was \(times.loss); rerun with --skip-nonfinite to skip such updates")
                }
                skippedSteps.append(i)
            }
            if i >= config.warmup {
                let timed = i - config.warmup
                recordsLock.lock()
                records.append(times)
                recordsLock.unlock()
                if config.recordTimeline { appendTimeline(stepStart: stepStart, wall: times.wall) }
                for l in layerForward.indices {
                    layerForward[l] += network.forwardSeconds[l]
                    layerForwardGemm[l] += network.forwardGemmSeconds[l]
                    if config.mode.hasBackward {
                        layerBackward[l] += network.backwardSeconds[l]
                        layerBackwardGemm[l] += network.backwardGemmSeconds[l]
                    }
                }
                if timed + 1 == 100 { residentAtStep100 = currentResidentBytes() }
                if timed % 10 == 0 { progress(timed, times) }
            } else {
                for b in bucketSeconds.indices { bucketSeconds[b] = 0 }
            }
            if let k = config.checkEvery, (i + 1) % k == 0 { _ = try checkReplicas(step: i) }
            if let dir = config.checkpointDir, let k = config.checkpointEvery, (i + 1) % k == 0, world.isRoot, let v = velocity {
                let header = Checkpoint.header(config: config, ranks: ranks, nextStep: i + 1, parameters: network.parameters)
                try Checkpoint.write(to: dir, header: header, parameters: network.parameters, momentum: v)
            }
        }
        residentAtEnd = currentResidentBytes()
        let n = Double(max(records.count, 1))
        for l in layerForward.indices {
            layerForward[l] /= n; layerBackward[l] /= n
            layerForwardGemm[l] /= n; layerBackwardGemm[l] /= n
        }
        for b in bucketSeconds.indices { bucketSeconds[b] /= n }
        return try checkReplicas(step: last)
    }

    func injectFault(at step: Int) {
        guard let f = config.fault, f.step == step, f.rank == world.rank else { return }
        switch f.kind {
        case .kill:
            FileHandle.standardError.write(Data("vgg-dp: injected fault: rank \(world.rank) kills itself at step \(step)\n".utf8))
            kill(getpid(), SIGKILL)
        case .stall:
            FileHandle.standardError.write(Data("vgg-dp: injected fault: rank \(world.rank) stalls at step \(step)\n".utf8))
            while true { sleep(60) }
        case .nan:
            break // applied inside the step, after the forward pass
        }
    }

    /// A copy of the records so far (safe to call from a signal handler's thread).
    public func recordsSnapshot() -> [StepTimes] {
        recordsLock.lock()
        defer { recordsLock.unlock() }
        return records
    }
}
