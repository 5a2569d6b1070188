import Comm
import Reports
import VGGEngine
import Vocabulary

/// Each bucket's allreduce runs on a communication thread as soon as
/// backward has finished its layers; after backward, each bucket is updated
/// as it arrives, in completion order. The time the compute thread waits for
/// a bucket is the exposed communication. With a compressor, the
/// communication thread runs each bucket's PowerSGD exchange (its compute
/// and its two allreduces).
final class OverlappedAllreduce: GradientExchange {
    let buckets: [Bucket]
    let allreducer: BucketAllreducer
    let wire: GradientWire
    var countdown: BucketCountdown
    var update: BucketUpdate
    let compressor: PowerSGD?
    var bucketCompression: [Double] { compressor?.bucketSeconds ?? [] }
    private(set) var fp32BytesSent = 0

    init(group: GradientGroup, network: Network, plan: BucketPlan, update: BucketUpdate, dtype: GradientDType,
         wait: CommWait = .blocking, pollMicroseconds: Int = 200, watchdog: Watchdog?, compressor: PowerSGD? = nil) throws {
        buckets = plan.buckets
        let wire = GradientWire(dtype: dtype, capacity: plan.buckets.map(\.count).max() ?? 0, wait: wait,
                                pollMicroseconds: pollMicroseconds)
        self.wire = wire
        let buckets = plan.buckets, base = network.gradients.base
        if let c = compressor {
            allreducer = try BucketAllreducer(buckets: buckets, threadLevel: group.threadLevel) { b, step in
                _ = try c.exchange(buckets[b], gradients: base, group: group, wire: wire, step: step, watchdog: watchdog)
            }
        } else {
            allreducer = try BucketAllreducer(group: group, base: base, buckets: buckets, wire: wire, watchdog: watchdog)
        }
        self.compressor = compressor
        countdown = BucketCountdown(plan: plan)
        self.update = update
    }

    var description: String {
        compressor.map { "\(wire.waitDescription), \($0.settings.description)" } ?? wire.waitDescription
    }
    var waitDescription: String { wire.waitDescription }
    var bytesSent: Int { wire.bytesSent }
    var bucketStart: [Double] { allreducer.startTimes }
    var bucketEnd: [Double] { allreducer.endTimes }

    func beginStep(_ step: Int) {
        allreducer.beginStep(step)
        countdown.reset()
        update.begin()
        compressor?.beginStep()
    }

    func layerReady(_ layer: Int) {
        if let b = countdown.layerReady(layer) { allreducer.submit(b) }
    }

    func finish(step: Int, times: inout StepTimes) throws -> NonfiniteGradient? {
        for b in buckets {
            try allreducer.wait(b.index)
            update.arrived(b)
        }
        let bad = update.finish(buckets)
        if bad != nil { compressor?.reset() }
        for b in buckets.indices { times.allreduce += allreducer.endTimes[b] - allreducer.startTimes[b] }
        times.exposed = allreducer.exposedWait
        fp32BytesSent += buckets.reduce(0) { $0 + $1.bytes }
        if let compressor {
            // The thread's busy time holds the compression compute: reported apart.
            times.compression = compressor.computeSeconds
            times.allreduce -= compressor.computeSeconds
        }
        return bad
    }

    func stop() { allreducer.stop() }
}
