import Comm
import VGGEngine
import Vocabulary

/// A run's configuration: a value, the same on every rank.
public struct TrainConfig: Codable, Equatable, Sendable {
    public var network = NetworkSpec()
    public var mode: Mode = .train
    /// Samples per rank per step.
    public var batchPerRank = 16
    public var warmup = 10
    public var steps = 100
    public var seed: UInt64 = 42
    public var optimizer = SGD()
    /// Target bucket size in MiB; 0 means one bucket per layer.
    public var bucketMB: Double = 25
    /// Allreduce on a communication thread while backward runs.
    public var overlap = true
    /// How gradients are averaged: allreduce, host-shared, or auto (see `HostReplica.resolve`).
    public var exchange: ExchangeChoice = .auto

    /// The type gradients travel in between ranks that do not share memory;
    /// with 16 bits each addition of the reduction rounds back to 16 bits.
    public var allreduceDType: GradientDType = .fp32
    /// PowerSGD gradient compression (`--compression powersgd`); nil: none.
    public var compression: PowerSGDSettings?
    /// How an allreduce is waited for; the CLI settles
    /// `auto` (`RankLayout.communicationWait`) before a trainer is built.
    public var commWait: CommWait = .blocking
    public var pollMicroseconds = 200
    /// Compare replicas' parameter checksums every K steps (nil: at the end only).
    public var checkEvery: Int?
    /// Cycle through a fixed synthetic set of this many samples.
    public var datasetSize: Int?
    /// Abort when a collective has not completed after this many seconds (0: never).
    public var timeout: Double = 300
    /// On a NaN or Inf gradient: skip that step's update on all ranks (else stop).
    public var skipNonfinite = false
    /// Rank 0 writes a checkpoint into this folder every `checkpointEvery` steps.
    public var checkpointDir: String?
    public var checkpointEvery: Int?
    /// Resume from the checkpoint in this folder.
    public var resumeDir: String?
    /// A fault to inject, for testing the reliability paths.
    public var fault: Fault?
    /// Run the sgemm peak probe at start (for the report's % of peak).
    public var peakProbe = true
    /// Keep every timed step's layer and bucket times (for --trace).
    public var recordTimeline = false
    /// Weight initialisation (the notebook's Glorot, or He).
    public var initScheme: Network.InitScheme = .glorot
    /// How 3×3 convolutions are lowered to sgemm.
    public var convAlgorithm: ConvAlgorithm = .auto
    /// im2col workspace budget, floats.
    public var workspaceFloats = Network.defaultWorkspaceFloats

    public init() {}

    /// Refuses settings no run can use (exit 2, before any work), naming the
    /// option and its valid range; `validate(ranks:)` adds what depends on the job's size.
    public func validate() throws {
        try network.validate()
        func positive(_ v: Int, _ flag: String) throws {
            guard v >= 1 else { throw TrainerError.usage("\(flag) must be at least 1, got \(v)") }
        }
        try positive(batchPerRank, "--batch-size")
        try positive(steps, "--steps")
        guard warmup >= 0 else { throw TrainerError.usage("--warmup must be 0 or more, got \(warmup)") }
        guard bucketMB >= 0, bucketMB.isFinite else { throw TrainerError.usage("--bucket-mb must be 0 or more, got \(bucketMB)") }
        if let k = checkEvery { try positive(k, "--check-every") }
        try positive(pollMicroseconds, "--poll-us")
        guard timeout >= 0, timeout.isFinite else { throw TrainerError.usage("--timeout must be 0 (off) or more seconds, got \(timeout)") }
        if let k = checkpointEvery { try positive(k, "--checkpoint-every") }
        if (checkpointDir == nil) != (checkpointEvery == nil) {
            throw TrainerError.usage("--checkpoint-dir and --checkpoint-every go together")
        }
        if (checkpointDir != nil || resumeDir != nil) && mode != .train {
            throw TrainerError.usage("checkpoints hold training state: --checkpoint-dir and --resume need --mode train")
        }
        if skipNonfinite && !mode.hasBackward {
            throw TrainerError.usage("--skip-nonfinite needs a mode with backward (train or forward-backward)")
        }
        if let d = datasetSize { try positive(d, "--dataset-size") }
        if let c = compression {
            try positive(c.rank, "--powersgd-rank")
            try positive(c.minSize, "--powersgd-min-size")
            guard mode.hasBackward else {
                throw TrainerError.usage("--compression powersgd compresses gradients: it needs a mode with backward (train or forward-backward)")
            }
        }
        guard optimizer.learningRate.isFinite, optimizer.learningRate >= 0 else {
            throw TrainerError.usage("--lr must be a finite number ≥ 0, got \(optimizer.learningRate)")
        }
        // Momentum 1 or more never forgets a gradient (the velocity grows
        // without bound); below 0 it reverses the previous step.
        guard optimizer.momentum.isFinite, optimizer.momentum >= 0, optimizer.momentum < 1 else {
            throw TrainerError.usage("--momentum must be a finite number in [0, 1), got \(optimizer.momentum)")
        }
        guard optimizer.weightDecay.isFinite, optimizer.weightDecay >= 0 else {
            throw TrainerError.usage("--weight-decay must be a finite number ≥ 0, got \(optimizer.weightDecay)")
        }
        if let f = fault, f.step >= warmup + steps {
            throw TrainerError.usage("--inject-fault \(f.kind.rawValue):\(f.rank):\(f.step): step \(f.step) never comes; this run's steps are 0 to \(warmup + steps - 1) (warm-up included)")
        }
    }

    /// `validate()`, and the checks that need the job's rank count.
    public func validate(ranks: Int) throws {
        try validate()
        if let f = fault, f.rank >= ranks {
            throw TrainerError.usage("--inject-fault \(f.kind.rawValue):\(f.rank):\(f.step): rank \(f.rank) does not exist; this job has ranks 0 to \(ranks - 1)")
        }
    }

    public var keepProbability: Float { mode == .forward ? 1 : 0.5 }
    public var objective: Objective { mode == .train ? .crossEntropy : .l2 }
}

/// A fault injected at a step on one rank, to test that the job fails fast
/// and names what failed (`kill:RANK:STEP`, `stall:RANK:STEP`, `nan:RANK:STEP`).
public struct Fault: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable { case kill, stall, nan }
    public var kind: Kind
    public var rank: Int
    public var step: Int

    public init(parsing text: String) throws {
        let parts = text.split(separator: ":").map(String.init)
        guard parts.count == 3, let kind = Kind(rawValue: parts[0]), let rank = Int(parts[1]), let step = Int(parts[2]),
              rank >= 0, step >= 0 else {
            throw TrainerError.usage("--inject-fault takes KIND:RANK:STEP with KIND kill, stall or nan, got \(text)")
        }
        self.kind = kind; self.rank = rank; self.step = step
    }
}
