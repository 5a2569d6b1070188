import ArgumentParser
import Comm
import Foundation
import Trainer
import VGGEngine
import Vocabulary

extension VGGModel: ExpressibleByArgument {}
extension Mode: ExpressibleByArgument {}
extension CommWait: ExpressibleByArgument {}
extension ConvAlgorithm: ExpressibleByArgument {}
extension GradientDType: ExpressibleByArgument {}
extension Network.InitScheme: ExpressibleByArgument {}
extension ExchangeChoice: ExpressibleByArgument {}
extension CompressionChoice: ExpressibleByArgument {}

/// The network's options, shared by every command that builds or describes one.
struct NetworkOptions: ParsableArguments {
    @Option(help: "vgg11, vgg13, vgg16 or vgg19.")
    var model: VGGModel = .vgg16
    @Option(help: "Square image side; a multiple of 32.")
    var imageSize = 224
    @Option(help: "Output classes.")
    var classes = 1000
    @Option(help: "Divides every conv channel count and the hidden FC width (quick runs, tests).")
    var widthDivisor = 1

    var spec: NetworkSpec { NetworkSpec(model: model, imageSize: imageSize, classes: classes, widthDivisor: widthDivisor) }
}

/// The network and run options shared by train and verify.
struct RunOptions: ParsableArguments {
    @OptionGroup var network: NetworkOptions
    @Option(help: "Samples per rank per step (weak scaling; default 16).")
    var batchSize: Int?
    @Option(help: "Samples per step over all ranks, split evenly (strong scaling).")
    var globalBatch: Int?
    @Option(help: "Untimed burn-in steps.")
    var warmup = 10
    @Option(help: "Timed steps.")
    var steps = 100
    @Option(help: "train, forward or forward-backward.")
    var mode: Mode = .train
    @Option(help: "Weight initialisation: glorot (the notebook's) or he.")
    var initScheme: Network.InitScheme = .glorot
    @Option(help: "Convolution lowering: im2col (reference), winograd2x2, winograd4x4, winograd6x6, or auto (per layer).")
    var conv: ConvAlgorithm = .auto
    @Option(help: "BLAS threads per rank (default: cores on the node / ranks on the node).")
    var threads: Int?
    @Option(help: "Seed for weights, data and dropout.")
    var seed: UInt64 = 42
    @Option(help: "SGD learning rate.")
    var lr: Float = 0.01
    @Option(help: "SGD momentum.")
    var momentum: Float = 0.9
    @Option(help: "SGD weight decay.")
    var weightDecay: Float = 5e-4
    @Option(help: "Gradient bucket size in MiB; 0 = one bucket per layer.")
    var bucketMb: Double = 25
    @Option(help: "Type gradients travel in between ranks that do not share memory: fp32, bf16 or fp16 (16-bit halves the traffic; each addition of the reduction rounds back to 16 bits).")
    var allreduceDtype: GradientDType = .fp32
    @Option(help: "Gradient compression: none, or powersgd (low-rank factors with error feedback; N ranks then differ from one rank by design).")
    var compression: CompressionChoice = .none
    @Option(help: "PowerSGD's rank: columns of each compressed layer's factors P and Q.")
    var powersgdRank = PowerSGDSettings.defaultRank
    @Option(help: "Smallest weight gradient, in elements, that PowerSGD compresses (smaller layers and biases travel whole).")
    var powersgdMinSize = PowerSGDSettings.defaultMinSize
    @Option(help: """
        How gradients are averaged: allreduce (a replica per rank, MPI_Allreduce), host-shared (one replica per \
        host in an MPI-3 shared window; each rank reduces and updates a slice; slice owners allreduce across \
        hosts, during backward unless --no-overlap), or auto: host-shared when every host runs the same number \
        of ranks, two or more, unless --overlap is given.
        """)
    var exchange: ExchangeChoice = .auto
    @Flag(inversion: .prefixedNo, help: """
        Run each bucket's allreduce on a communication thread while backward goes on (--overlap), or after \
        backward (--no-overlap). Default: overlap when the ranks span hosts or this host has a core no rank \
        computes on; on one host with every core computing, after backward (measured faster there).
        """)
    var overlap: Bool? = nil
    @Option(help: """
        How an allreduce is waited for: blocking (MPI_Allreduce), polling (MPI_Iallreduce + MPI_Test, \
        sleeping --poll-us between tests), or auto: polling for host-shared's cross-host allreduce on a host \
        with no core to spare for the wait (overlapped: ranks × (threads + 1) over its cores; after backward: \
        as many ranks as cores), else blocking.
        """)
    var commWait: CommWait = .auto
    @Option(help: "Sleep between MPI_Test calls when polling, microseconds.")
    var pollUs = 200
    @Option(help: "Compare replica checksums every K steps (default: at the end).")
    var checkEvery: Int?
    @Option(help: "Cycle through a fixed synthetic set of this many samples.")
    var datasetSize: Int?
    @Option(help: "Abort, naming the ranks that have not arrived, when a collective has not completed after this many seconds (0: never).")
    var timeout: Double = 300
    @Flag(help: "Skip (on all ranks) the update of a step whose gradient has a NaN or Inf, and count it, instead of stopping.")
    var skipNonfinite = false
    @Option(help: "Folder where rank 0 writes checkpoints (with --checkpoint-every).")
    var checkpointDir: String?
    @Option(help: "Write a checkpoint every K steps.")
    var checkpointEvery: Int?
    @Option(help: "Resume from the checkpoint in this folder.")
    var resume: String?
    @Option(help: .hidden)
    var injectFault: String?

    /// The configuration for a job of `ranks` ranks.
    func config(ranks: Int) throws -> TrainConfig {
        var c = TrainConfig()
        c.network = network.spec
        c.mode = mode
        c.convAlgorithm = conv
        c.initScheme = initScheme
        switch (batchSize, globalBatch) {
        case (.some, .some):
            throw TrainerError.usage("give --batch-size (per rank) or --global-batch (split over ranks), not both")
        case let (_, .some(g)):
            guard g >= 1 else { throw TrainerError.usage("--global-batch must be at least 1, got \(g)") }
            guard g % ranks == 0 else {
                throw TrainerError.usage("--global-batch \(g) is not divisible by the \(ranks) ranks; use a multiple of \(ranks)")
            }
            c.batchPerRank = g / ranks
        case let (.some(b), _):
            c.batchPerRank = b
        case (.none, .none):
            c.batchPerRank = 16
        }
        c.warmup = warmup
        c.steps = steps
        c.seed = seed
        c.optimizer = SGD(learningRate: lr, momentum: momentum, weightDecay: weightDecay)
        c.bucketMB = bucketMb
        c.overlap = overlap ?? true  // `resolveExchange` decides when neither flag was given
        c.exchange = exchange
        c.checkEvery = checkEvery
        c.allreduceDType = allreduceDtype
        if compression == .powersgd { c.compression = PowerSGDSettings(rank: powersgdRank, minSize: powersgdMinSize) }
        c.commWait = commWait
        c.pollMicroseconds = pollUs
        c.timeout = timeout
        c.skipNonfinite = skipNonfinite
        c.checkpointDir = checkpointDir
        c.checkpointEvery = checkpointEvery
        c.resumeDir = resume
        if let f = injectFault { c.fault = try Fault(parsing: f) }

        c.datasetSize = datasetSize
        if let t = threads, t < 1 { throw TrainerError.usage("--threads must be at least 1, got \(t)") }
        try c.validate(ranks: ranks)
        return c
    }

    /// Settles the exchange for this job's layout: an explicit --overlap with
    /// --exchange auto asks for the allreduce exchange; host-shared overlaps
    /// its exchange across hosts with backward unless --no-overlap (on one
    /// host it has nothing to overlap: it runs after backward); otherwise
    /// `config.overlap` comes from --overlap / --no-overlap or
    /// `RankLayout.overlapsAllreduce`; `--comm-wait auto` becomes what
    /// `RankLayout.communicationWait` picks for that overlap. With
    /// compression, host-shared runs only across hosts (`HostReplica.resolve`).
    func resolveExchange(_ config: inout TrainConfig, world: World, threads: Int) throws {
        let hosts = Set(world.hostNames).count
        let layout = RankLayout(hosts: hosts, ranksPerHost: world.localSize, threadsPerRank: threads,
                                cores: ProcessInfo.processInfo.activeProcessorCount)
        if overlap == true && config.exchange == .auto { config.exchange = .allreduce }
        if try DataParallelTrainer.usesHostShared(config, group: world) {
            if overlap == true && hosts == 1 {
                throw TrainerError.usage("--overlap with --exchange host-shared overlaps the exchange across hosts with backward; this job runs on one host, where host-shared exchanges after backward (use --exchange allreduce --overlap to overlap an allreduce)")
            }
            config.exchange = .hostShared
            config.overlap = hosts > 1 && overlap != false
        } else {
            if config.mode.hasBackward && world.size > 1 { config.exchange = .allreduce }
            config.overlap = overlap ?? layout.overlapsAllreduce
        }
        config.commWait = layout.communicationWait(commWait, exchange: config.exchange, overlapped: config.overlap && world.size > 1)
    }
}
