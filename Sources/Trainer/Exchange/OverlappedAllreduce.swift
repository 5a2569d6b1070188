import Comm
import Reports
import VGGEngine
import Vocabulary

/// Each bucket's allreduce runs on a communication thread as soon as
/// backward has finished its layers; after backward, each bucket is updated
/// as it arrives, in completion order. The time the compute thread waits for
/// a bucket is the exposed communication.
final class OverlappedAllreduce: GradientExchange {
    let buckets: [Bucket]
    let allreducer: BucketAllreducer
    let wire: GradientWire
    var countdown: BucketCountdown
    var update: BucketUpdate

    init(group: GradientGroup, network: Network, plan: BucketPlan, update: BucketUpdate, dtype: GradientDType,
         wait: CommWait = .blocking, pollMicroseconds: Int = 200, watchdog: Watchdog?) throws {
        buckets = plan.buckets
        let wire = GradientWire(dtype: dtype, capacity: plan.buckets.map(\.count).max() ?? 0, wait: wait,
                                pollMicroseconds: pollMicroseconds)
        self.wire = wire
        allreducer = try BucketAllreducer(group: group, base: network.gradients.base, buckets: plan.buckets, wire: wire,
                                          watchdog: watchdog)
        countdown = BucketCountdown(plan: plan)
        self.update = update
    }

    var description: String { wire.waitDescription }
    var waitDescription: String { wire.waitDescription }
    var bytesSent: Int { wire.bytesSent }
    var bucketStart: [Double] { allreducer.startTimes }
    var bucketEnd: [Double] { allreducer.endTimes }

    func beginStep(_ step: Int) {
        allreducer.beginStep(step)
        countdown.reset()
        update.begin()
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
        for b in buckets.indices { times.allreduce += allreducer.endTimes[b] - allreducer.startTimes[b] }
        times.exposed = allreducer.exposedWait
        return bad
    }

    func stop() { allreducer.stop() }
}
