import Comm
import Reports
import VGGEngine
import Vocabulary

/// The exchange for one replica per host (`HostReplica`), after backward:
/// 1. the host's ranks meet (every local gradient is final);
/// 2. each rank sums its slice over the host's gradient arenas; on one host
///    it applies SGD in the same pass (`SGD.stepSumming`); across hosts it
///    writes the sum into its own arena, allreduces that slice with the
///    slice's owners on the other hosts, then applies SGD to the slice;
/// 3. the host's ranks meet again: the shared parameters are whole for the
///    next forward, and every rank reads every slice's NaN/Inf verdict.
/// Across hosts with overlap, steps 1 and 2 (without the SGD) run bucket by
/// bucket on a communication thread while backward goes on: as backward
/// finishes a bucket, the thread meets the host's other threads (every local
/// rank has finished it), sums this rank's piece of the bucket and
/// allreduces the piece across hosts; after backward the compute thread
/// waits for the last bucket, then updates its slice.
/// With PowerSGD (`compressor`, across hosts only) what crosses hosts is
/// compressed: a rank's piece of each bucket, summed over the host, goes
/// through PowerSGD's exchange with the slice's owners on the other hosts
/// instead of an allreduce; its error-feedback memory covers this rank's
/// slice alone.
/// With --skip-nonfinite the update waits until every verdict is known.
/// Every host applies the same sums in the same order, so every host's
/// replica is bitwise the same.
final class HostSharedExchange: GradientExchange {
    let replica: HostReplica
    let network: Network
    let buckets: [Bucket]
    /// nil without an update (forward-backward mode).
    let optimizer: SGD?
    let scale: Float
    let skipNonfinite: Bool
    let wire: GradientWire
    let watchdog: Watchdog?
    /// This rank's slice cut by the buckets, in bucket order, for the NaN/Inf verdict.
    let pieces: [(bucket: Int, range: ArenaSlice)]
    let layerSlices: [ArenaSlice]
    /// Across hosts with overlap: the communication thread, and which bucket
    /// each layer completes.
    let pipeline: BucketAllreducer?
    var countdown: BucketCountdown
    /// Per bucket, this rank's piece of it (count 0 when its slice misses the bucket).
    let bucketPieces: [Bucket]
    /// With compression across hosts: PowerSGD over this rank's pieces
    /// (`bucketPieces`); and what fp32 would have sent, bytes so far.
    let compressor: PowerSGD?
    private var fp32Sent = 0
    var bucketCompression: [Double] { compressor?.bucketSeconds ?? [] }
    private let noTimes: [Double]
    /// Per bucket, the last step's exchange (Clock seconds); zero after backward.
    var bucketStart: [Double] { pipeline?.startTimes ?? noTimes }
    var bucketEnd: [Double] { pipeline?.endTimes ?? noTimes }

    /// Per bucket, this rank's piece of it as a bucket of its own (count 0
    /// where the slice misses it): what a compressor across hosts is built on.
    static func pieceBuckets(plan: BucketPlan, slice mine: ArenaSlice) -> [Bucket] {
        plan.buckets.map { b in
            let lo = max(b.offset, mine.offset), hi = min(b.end, mine.end)
            return Bucket(index: b.index, layers: b.layers, offset: lo, count: max(0, hi - lo))
        }
    }

    init(replica: HostReplica, network: Network, plan: BucketPlan, config: TrainConfig, ranks: Int,
         watchdog: Watchdog?, compressor: PowerSGD? = nil) throws {
        precondition(compressor == nil || replica.across != nil, "host-shared compresses only what crosses hosts")
        self.replica = replica
        self.compressor = compressor
        self.network = network
        buckets = plan.buckets
        optimizer = config.mode == .train ? config.optimizer : nil
        scale = 1 / Float(ranks)
        skipNonfinite = config.skipNonfinite
        wire = GradientWire(dtype: replica.across == nil ? .fp32 : config.allreduceDType, capacity: replica.slice.count,
                            wait: config.commWait, pollMicroseconds: config.pollMicroseconds)
        self.watchdog = watchdog
        let mine = replica.slice
        bucketPieces = Self.pieceBuckets(plan: plan, slice: mine)
        pieces = bucketPieces.filter { $0.count > 0 }.map { ($0.index, ArenaSlice(offset: $0.offset, count: $0.count)) }
        layerSlices = network.layers.map(\.parameterSlice)
        noTimes = Array(repeating: 0, count: plan.buckets.count)
        countdown = BucketCountdown(plan: plan)
        if let across = replica.across, config.overlap {
            let memory = replica.memory, arenas = replica.gradientArenas, own = replica.gradients.base
            let pieces = bucketPieces, wire = self.wire
            pipeline = try BucketAllreducer(buckets: plan.buckets, threadLevel: across.threadLevel) { b, step in
                watchdog?.announce(step: step, id: b)
                defer { watchdog?.completed() }
                try memory.synchronize()  // every local rank has finished bucket b
                let piece = pieces[b]
                guard piece.count > 0 else { return }
                SGD.sum(arenas, into: own, range: ArenaSlice(offset: piece.offset, count: piece.count))
                if let compressor {
                    _ = try compressor.exchange(piece, gradients: own, group: across, wire: wire, step: step, watchdog: nil)
                } else {
                    try across.allreduceSum(own + piece.offset, count: piece.count, wire: wire)
                }
            }
        } else {
            pipeline = nil
        }
    }

    var description: String {
        let h = replica.host.size
        guard let across = replica.across else {
            return "host-shared: one replica per host in an MPI-3 shared window; after backward each of the host's \(h) ranks "
                + "sums its slice of the gradients and updates it; no gradient is copied within a host"
        }
        let when = pipeline == nil ? "after backward" : "bucket by bucket during backward, on a communication thread,"
        let how = compressor.map { "exchange it through \($0.settings.description)" } ?? "allreduce it"
        return "host-shared: one replica per host in an MPI-3 shared window; \(when) each of the host's \(h) ranks "
            + "sums its slice of the gradients; across \(across.size) hosts the owners of a slice \(how) "
            + "(\(wire.dtype.rawValue)); each rank then updates its slice; no gradient is copied within a host"
    }
    var waitDescription: String { replica.across == nil ? "none" : wire.waitDescription }
    var bytesSent: Int { wire.bytesSent }
    var fp32BytesSent: Int { fp32Sent }

    func beginStep(_ step: Int) {
        pipeline?.beginStep(step)
        compressor?.beginStep()
        countdown.reset()
    }

    func layerReady(_ layer: Int) {
        if let pipeline, let b = countdown.layerReady(layer) { pipeline.submit(b) }
    }

    func finish(step: Int, times: inout StepTimes) throws -> NonfiniteGradient? {
        if replica.across != nil { fp32Sent += replica.slice.count * 4 }
        let bad = try finishStep(step: step, times: &times)
        if let compressor {
            times.compression = compressor.computeSeconds
            if bad != nil { compressor.reset() }  // every host reaches the same verdict
        }
        return bad
    }

    private func finishStep(step: Int, times: inout StepTimes) throws -> NonfiniteGradient? {
        if let pipeline { return try finishPipelined(pipeline, step: step, times: &times) }
        let t0 = Clock.now()
        try meet(step)
        let t1 = Clock.now()
        let r = replica, slice = r.slice, mine = r.gradients
        if r.across == nil, let sgd = optimizer, let v = r.momentum, !skipNonfinite {
            let finite = sgd.stepSumming(r.gradientArenas, parameters: r.parameters.base, velocity: v.base,
                                         range: slice, gradientScale: scale)
            var bad: NonfiniteGradient? = nil
            if !finite {
                // Only to name the bucket: the sums, again, into this rank's own slice.
                SGD.sum(r.gradientArenas, into: mine.base, range: slice)
                bad = firstBadBucket()
            }
            times.allreduce = Clock.now() - t1
            times.exposed = (t1 - t0) + times.allreduce
            publish(bad)
            try meet(step)
            return worstVerdict()
        } else {
            SGD.sum(r.gradientArenas, into: mine.base, range: slice)
            if let across = r.across {
                watchdog?.announce(step: step, id: TrainerCollective.acrossHosts.rawValue)
                if let compressor {
                    for piece in bucketPieces where piece.count > 0 {
                        _ = try compressor.exchange(piece, gradients: mine.base, group: across, wire: wire, step: step, watchdog: nil)
                    }
                } else {
                    try across.allreduceSum(mine.base + slice.offset, count: slice.count, wire: wire)
                }
                watchdog?.completed()
            }
            times.allreduce = Clock.now() - t1
            times.exposed = (t1 - t0) + times.allreduce
            return try updateAfterVerdicts(step: step)
        }
    }

    /// After backward with the pipeline: wait for its last bucket, then the
    /// verdicts and the update as after backward.
    private func finishPipelined(_ pipeline: BucketAllreducer, step: Int, times: inout StepTimes) throws -> NonfiniteGradient? {
        for b in buckets { try pipeline.wait(b.index) }
        times.exposed = pipeline.exposedWait
        times.allreduce = zip(pipeline.startTimes, pipeline.endTimes).reduce(0) { $0 + $1.1 - $1.0 }
        return try updateAfterVerdicts(step: step)
    }

    /// With the summed slice in this rank's own arena: its NaN/Inf verdict,
    /// the update of the slice (with --skip-nonfinite only when every
    /// rank's verdict is clean), and the meeting that ends the step.
    private func updateAfterVerdicts(step: Int) throws -> NonfiniteGradient? {
        let bad = firstBadBucket()
        if skipNonfinite {
            publish(bad)
            try meet(step)
            if worstVerdict() == nil { update() }
        } else {
            update()
        }
        publish(bad)
        try meet(step)
        return worstVerdict()
    }

    /// SGD on this rank's slice, from the summed gradient in its own arena.
    private func update() {
        guard let sgd = optimizer, let v = replica.momentum else { return }
        sgd.step(parameters: replica.parameters, gradients: replica.gradients, velocity: v,
                 slice: replica.slice, gradientScale: scale)
    }

    private func meet(_ step: Int) throws {
        watchdog?.announce(step: step, id: TrainerCollective.hostMeeting.rawValue)
        try replica.memory.synchronize()
        watchdog?.completed()
    }

    /// Where this rank's slice of the summed gradient holds a NaN or Inf, if it does.
    private func firstBadBucket() -> NonfiniteGradient? {
        guard let piece = pieces.first(where: { !NonfiniteScan.isFinite(replica.gradients, $0.range) }) else { return nil }
        let layer = NonfiniteScan.firstBadLayer(buckets[piece.bucket], in: replica.gradients, layerSlices: layerSlices,
                                                within: replica.slice) ?? buckets[piece.bucket].lowestLayer
        return NonfiniteGradient(bucket: piece.bucket, layer: layer)
    }

    private func publish(_ bad: NonfiniteGradient?) {
        replica.verdicts[2 * replica.localRank] = Float(bad?.bucket ?? -1)
        replica.verdicts[2 * replica.localRank + 1] = Float(bad?.layer ?? -1)
    }

    /// The first bad bucket any local rank found, and its first bad layer
    /// (the same on every host: every host holds the same sums).
    private func worstVerdict() -> NonfiniteGradient? {
        (0..<replica.host.size).compactMap { r -> NonfiniteGradient? in
            let b = Int(replica.verdicts[2 * r]), l = Int(replica.verdicts[2 * r + 1])
            return b >= 0 ? NonfiniteGradient(bucket: b, layer: l) : nil
        }.min { ($0.bucket, $0.layer) < ($1.bucket, $1.layer) }
    }

    func stop() { pipeline?.stop() }
}
