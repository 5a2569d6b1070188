import CMPI
import Foundation
import Vocabulary

/// Sums gradient buckets across ranks on a dedicated communication thread, so
/// that a bucket's allreduce runs while backward computes the layers before
/// it. The compute thread calls `submit(b)` when bucket b's gradients are
/// final and `wait(b)` before stepping the optimizer on it; the two threads
/// meet only under one lock. Buckets go out in the order submitted, which is
/// the same on every rank (the plan is verified identical at start), so the
/// collectives match across ranks.
///
/// The compute thread makes no MPI call between `beginStep` and the last
/// `wait` of the step, so MPI_THREAD_SERIALIZED is enough.
public final class BucketAllreducer {
    public let buckets: [Bucket]
    let world: World
    let base: UnsafeMutablePointer<Float>
    let lock = NSCondition()
    // Ring of submitted bucket indices; capacity = buckets, never reallocated.
    var queue: [Int]
    var head = 0, tail = 0
    var done: [Bool]
    var stopping = false
    var thread: Thread?

    /// Per bucket, absolute times (Clock) of the last step's allreduce.
    public private(set) var startTimes: [Double]
    public private(set) var endTimes: [Double]
    /// Time the compute thread spent blocked in `wait` this step.
    public private(set) var exposedWait: Double = 0

    public static let requiredThreadLevel = ThreadLevel.serialized
    /// Told about each allreduce, when the job runs one.
    public var watchdog: Watchdog?
    var step = 0

    public let waitMode: CommWait
    let dtype: GradientDType
    /// 16-bit copy of the largest bucket, when gradients travel in 16 bits.
    let staging: UnsafeMutablePointer<UInt16>?

    public init(world: World, base: UnsafeMutablePointer<Float>, buckets: [Bucket], wait: CommWait = .blocking,
                dtype: GradientDType = .fp32) throws {
        guard world.threadLevel >= Self.requiredThreadLevel else {
            throw CommError.threadLevel(required: Self.requiredThreadLevel, provided: world.threadLevel)
        }
        self.world = world
        self.base = base
        self.buckets = buckets
        waitMode = wait
        self.dtype = dtype
        let largest = buckets.map(\.count).max() ?? 0
        staging = dtype == .fp32 ? nil : .allocate(capacity: max(largest, 1))
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

    /// Blocks until bucket b has been summed over all ranks.
    public func wait(_ bucket: Int) {
        lock.lock()
        if !done[bucket] {
            let t0 = now()
            while !done[bucket] { lock.wait() }
            exposedWait += now() - t0
        }
        lock.unlock()
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
        staging?.deallocate()
    }

    func run() {
        while true {
            lock.lock()
            while head == tail && !stopping { lock.wait() }
            if head == tail && stopping { lock.unlock(); return }
            let b = queue[head]
            let step = self.step
            head += 1
            lock.unlock()

            watchdog?.announce(step: step, id: b)
            let t0 = now()
            world.allreduceSum(base + buckets[b].offset, count: buckets[b].count, dtype: dtype, staging: staging, wait: waitMode)
            let t1 = now()
            watchdog?.completed()

            lock.lock()
            startTimes[b] = t0
            endTimes[b] = t1
            done[b] = true
            lock.broadcast()
            lock.unlock()
        }
    }

    @inline(__always) func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}
