/// One row of an allreduce benchmark, as nccl-tests define the columns:
/// algbw = bytes / time; busbw = algbw · 2(N−1)/N, the bandwidth each link
/// carries in a ring allreduce, comparable across rank counts. Comm measures
/// it; `vgg-dp allreduce-bench --json` records it and `vgg-dp model --fit`
/// reads it back.
public struct AllreduceResult: Codable, Sendable {
    public var bytes: Int
    public var count: Int
    public var iterations: Int
    /// Mean over iterations of the slowest rank's time, seconds.
    public var seconds: Double
    public var algbwGBps: Double
    public var busbwGBps: Double
    /// Whether a final call, on rank-dependent values, summed correctly on every rank.
    public var correct = true
    /// Busy CPU seconds of one host per call: the busy time (user, nice,
    /// system, irq, softirq; every process and the kernel) of rank 0's
    /// machine from /proc/stat over the timed calls, ÷ the calls, ÷ the hosts
    /// on that machine (simulated hosts share one). nil where /proc/stat
    /// cannot be read, and in files written before it was measured.
    public var hostCpuSeconds: Double?

    public init(bytes: Int, count: Int, iterations: Int, seconds: Double, algbwGBps: Double, busbwGBps: Double,
                correct: Bool = true, hostCpuSeconds: Double? = nil) {
        self.bytes = bytes
        self.count = count
        self.iterations = iterations
        self.seconds = seconds
        self.algbwGBps = algbwGBps
        self.busbwGBps = busbwGBps
        self.correct = correct
        self.hostCpuSeconds = hostCpuSeconds
    }
}
