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
    /// The first bucket with a NaN or Inf gradient this step, if any (set by
    /// the trainer, not reported).
    public var nonfiniteBucket: Int? = nil

    private enum CodingKeys: String, CodingKey { case wall, data, forward, backward, optimizer, allreduce, exposed, loss }

    /// Values of `packed`.
    public static let fields = 8
    public var packed: [Double] { [wall, data, forward, backward, optimizer, allreduce, exposed, loss] }
    public init() {}
    public init(packed p: ArraySlice<Double>) {
        let v = Array(p)
        wall = v[0]; data = v[1]; forward = v[2]; backward = v[3]
        optimizer = v[4]; allreduce = v[5]; exposed = v[6]; loss = v[7]
    }
}

/// What one rank measured, as sent to rank 0 in one MPI_Gatherv of doubles.
public struct RankTimings: Equatable, Sendable {
    public var steps: [StepTimes]
    /// Per layer means over timed steps: forward, backward, forward sgemm,
    /// backward sgemm (4 arrays of the layer count, concatenated).
    public var layerMeans: [Double]
    /// Per bucket mean allreduce seconds.
    public var bucketMeans: [Double]
    public var peakRssBytes: Int
    /// sgemm GFLOP/s this rank measured at start with its thread count.
    public var peakGflops: Double
    /// Timeline events (Timeline.stride values per timed step), seconds since
    /// the common start; empty unless a trace was asked for.
    public var timeline: [Double]
    /// Resident memory at the 100th timed step (0 if the run was shorter) and at the end.
    public var residentAtStep100 = 0
    public var residentAtEnd = 0
    /// Steps whose update was skipped for a non-finite gradient.
    public var skippedSteps = 0

    public init(steps: [StepTimes], layerMeans: [Double], bucketMeans: [Double], peakRssBytes: Int,
                peakGflops: Double, timeline: [Double] = []) {
        self.steps = steps
        self.layerMeans = layerMeans
        self.bucketMeans = bucketMeans
        self.peakRssBytes = peakRssBytes
        self.peakGflops = peakGflops
        self.timeline = timeline
    }

    public var packed: [Double] {
        var v: [Double] = [Double(steps.count), Double(layerMeans.count), Double(bucketMeans.count),
                           Double(timeline.count), Double(peakRssBytes), peakGflops,
                           Double(residentAtStep100), Double(residentAtEnd), Double(skippedSteps)]
        for r in steps { v += r.packed }
        return v + layerMeans + bucketMeans + timeline
    }

    public init(packed v: [Double]) {
        let n = Int(v[0]), l = Int(v[1]), b = Int(v[2]), t = Int(v[3])
        peakRssBytes = Int(v[4])
        peakGflops = v[5]
        residentAtStep100 = Int(v[6])
        residentAtEnd = Int(v[7])
        skippedSteps = Int(v[8])
        var o = 9
        steps = (0..<n).map { i in StepTimes(packed: v[(o + i * StepTimes.fields)..<(o + (i + 1) * StepTimes.fields)]) }
        o += n * StepTimes.fields
        layerMeans = Array(v[o..<(o + l)]); o += l
        bucketMeans = Array(v[o..<(o + b)]); o += b
        timeline = Array(v[o..<(o + t)])
    }
}

/// The environment a report records, read once on rank 0.
public struct RunEnvironment: Sendable {
    public var hosts: [String]
    public var blasThreads: Int
    public var blasCore: String
    public var blasConfig: String
    public var openblasCoretype: String?
    public var blasKernelChoice: String? = nil
    public var mpiLibrary: String
    public var mpiThreadLevel: String
    public var commWait: String

    public init(hosts: [String], blasThreads: Int, blasCore: String, blasConfig: String, openblasCoretype: String?,
                blasKernelChoice: String? = nil, mpiLibrary: String, mpiThreadLevel: String, commWait: String) {
        self.hosts = hosts
        self.blasThreads = blasThreads
        self.blasCore = blasCore
        self.blasConfig = blasConfig
        self.openblasCoretype = openblasCoretype
        self.blasKernelChoice = blasKernelChoice
        self.mpiLibrary = mpiLibrary
        self.mpiThreadLevel = mpiThreadLevel
        self.commWait = commWait
    }
}
