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
    /// Gradient compression compute (PowerSGD's products, orthonormalisation
    /// and error feedback), when the run compresses; nil otherwise.
    public var compression: Double? = nil
    public init() {}
}

/// One layer's seconds per step: forward and backward, and of those the time inside sgemm.
public struct LayerTimes: Codable, Equatable, Sendable {
    public var forward = 0.0
    public var backward = 0.0
    public var forwardGemm = 0.0
    public var backwardGemm = 0.0
    public init(forward: Double = 0, backward: Double = 0, forwardGemm: Double = 0, backwardGemm: Double = 0) {
        self.forward = forward
        self.backward = backward
        self.forwardGemm = forwardGemm
        self.backwardGemm = backwardGemm
    }
}

/// What one rank measured, as gathered to rank 0 (`World.gather`, as JSON).
public struct RankTimings: Codable, Equatable, Sendable {
    public var steps: [StepTimes]
    /// Per layer, forward order: means over timed steps.
    public var layerMeans: [LayerTimes]
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
    /// The largest proportional set size sampled (after the first timed step,
    /// at the 100th and at the end), bytes.
    public var peakPssBytes = 0
    /// Bytes this rank handed per timed step to collectives between ranks
    /// that do not share memory (the gradient exchange's payload, in its wire type).
    public var exchangeBytesPerStep = 0
    /// What those collectives would have carried as uncompressed fp32, bytes per timed step.
    public var fp32BytesPerStep = 0
    /// Memory this rank allocated for the model: its share of the host's
    /// window (host-shared) and its own (arenas, activations, workspace), bytes.
    public var sharedBytesPerHost = 0
    public var privateBytes = 0

    public init(steps: [StepTimes], layerMeans: [LayerTimes], bucketMeans: [Double], peakRssBytes: Int,
                peakGflops: Double, timeline: [Double] = []) {
        self.steps = steps
        self.layerMeans = layerMeans
        self.bucketMeans = bucketMeans
        self.peakRssBytes = peakRssBytes
        self.peakGflops = peakGflops
        self.timeline = timeline
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
