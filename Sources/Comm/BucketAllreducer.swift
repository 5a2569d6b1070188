import Foundation
import Vocabulary

/// Sums gradient buckets across ranks on a dedicated communication thread, so
/// that a bucket's allreduce runs while backward computes the layers before
/// it. The compute thread calls `submit(b)` when bucket b's gradients are
/// final and `wait(b)` before stepping the optimizer on it; the two threads
/// meet only under one lock. Buckets go out in the order submitted, which is
/// the same on every rank (the plan is verified identical at start), so the
/// collectives match across ranks. What the thread does with a bucket is its
/// `job`: by default one allreduce of the bucket; PowerSGD gives its
/// compressed exchange, and the host-shared exchange its own (meet the host,
/// sum a slice, allreduce it across hosts).
///
/// The compute thread makes no MPI call between `beginStep` and the last
/// `wait` of the step, so MPI_THREAD_SERIALIZED is enough.
public final class BucketAllreducer {
    public let buckets: [Bucket]
    /// The communication for bucket b at a step, run on the thread; throwing stops the thread.
    public typealias Job = (_ bucket: Int, _ step: Int) throws -> Void
    let job: Job
    let lock = NSCondition()
    // Ring of submitted bucket indices; capacity = buckets, never reallocated.
    var queue: [Int]
    var head = 0, tail = 0
    var done: [Bool]
    var stopping = false
    var thread: Thread?
    /// The first failed allreduce; `wait` rethrows it on the compute thread.
    var failure: Error?

    /// Per bucket, absolute times (Clock) of the last step's allreduce.
    public private(set) var startTimes: [Double]
    public private(set) var endTimes: [Double]
    /// Time the compute thread spent blocked in `wait` this step.
    public private(set) var exposedWait: Double = 0

    public static let requiredThreadLevel = ThreadLevel.serialized
    var step = 0

    /// Each bucket's job is one allreduce of its floats at `base` over
    /// `group`, announced to the watchdog as collective b.
    public convenience init(group: GradientGroup, base: UnsafeMutablePointer<Float>, buckets: [Bucket], wire: GradientWire,
                            watchdog: Watchdog? = nil) throws {
        try self.init(buckets: buckets, threadLevel: group.threadLevel) { b, step in
            watchdog?.announce(step: step, id: b)
            defer { watchdog?.completed() }
            try group.allreduceSum(base + buckets[b].offset, count: buckets[b].count, wire: wire)
        }
    }

    /// Runs `job(b, step)` on the thread for each submitted bucket b; the job
    /// makes and announces its own collectives. `threadLevel`: what MPI
    /// provides the groups the job uses.
    public init(buckets: [Bucket], threadLevel: ThreadLevel, job: @escaping Job) throws {
        guard threadLevel >= Self.requiredThreadLevel else {
            throw CommError.threadLevel(required: Self.requiredThreadLevel, provided: threadLevel)
        }
        self.buckets = buckets
        self.job = job
        queue = Array(repeating: 0, count: buckets.count + 1)
        done = Array(repeating: false, count: buckets.count)
        startTimes = Array(repeating: 0, count: buckets.count)
        endTimes = Array(repeating: 0, count: buckets.count)
        let t = Thread { [unowned self] in self.run() }
        t.name = "vgg-dp comm"
        thread = t
        t.start()
    }

    /// Clears last step's state. Call before backward.
    public func beginStep(_ step: Int) {
        lock.lock()
        self.step = step
        for i in done.indices { done[i] = false }
        head = 0; tail = 0
        exposedWait = 0
        lock.unlock()
    }

    public func submit(_ bucket: Int) {
        lock.lock()
        queue[tail] = bucket
        tail += 1
        lock.signal()
        lock.unlock()
    }

    /// Blocks until bucket b has been summed over all ranks; throws the
    /// communication thread's error if an allreduce failed.
    public func wait(_ bucket: Int) throws {
        lock.lock()
        defer { lock.unlock() }
        if !done[bucket] && failure == nil {
            let t0 = Clock.now()
            while !done[bucket] && failure == nil { lock.wait() }
            exposedWait += Clock.now() - t0
        }
        if let failure { throw failure }
    }

    /// Stops the thread; call once, after the last step.
    public func stop() {
        guard thread != nil else { return }
        lock.lock()
        stopping = true
        lock.broadcast()
        lock.unlock()
        while thread?.isFinished == false { usleep(100) }
        thread = nil
    }

    func run() {
        while true {
            lock.lock()
            while (head == tail || failure != nil) && !stopping { lock.wait() }
            if stopping && (head == tail || failure != nil) { lock.unlock(); return }
            let b = queue[head]
            let step = self.step
            head += 1
            lock.unlock()

            let t0 = Clock.now()
            var error: Error? = nil
            do {
                try job(b, step)
            } catch let e {
                error = e
            }
            let t1 = Clock.now()

            lock.lock()
            startTimes[b] = t0
            endTimes[b] = t1
            if let error { failure = error } else { done[b] = true }
            lock.broadcast()
            lock.unlock()
        }
    }
}
