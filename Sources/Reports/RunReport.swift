import Foundation
import Vocabulary

/// Everything a run measured, as written to `--report FILE` (JSON, snake_case
/// keys). Rank 0 builds it from all ranks' timings, gathered at the end
/// (Trainer's `RunReport.make`); the baselines of scripts/baselines/ write
/// the same fields. Schema 1.
public struct RunReport: Encodable, Sendable {
    public struct Layer: Codable, Sendable {
        public var name: String
        public var forwardSeconds: Double
        public var backwardSeconds: Double
        /// Of those, time inside sgemm; the rest is im2col, col2im, bias, ReLU, pooling.
        public var forwardGemmSeconds: Double
        public var backwardGemmSeconds: Double
        public var forwardFlops: Int
        public var backwardFlops: Int
        public var forwardGflopsPerSecond: Double
        public var backwardGflopsPerSecond: Double

        public init(name: String, forwardSeconds: Double, backwardSeconds: Double, forwardGemmSeconds: Double,
                    backwardGemmSeconds: Double, forwardFlops: Int, backwardFlops: Int,
                    forwardGflopsPerSecond: Double, backwardGflopsPerSecond: Double) {
            self.name = name
            self.forwardSeconds = forwardSeconds
            self.backwardSeconds = backwardSeconds
            self.forwardGemmSeconds = forwardGemmSeconds
            self.backwardGemmSeconds = backwardGemmSeconds
            self.forwardFlops = forwardFlops
            self.backwardFlops = backwardFlops
            self.forwardGflopsPerSecond = forwardGflopsPerSecond
            self.backwardGflopsPerSecond = backwardGflopsPerSecond
        }
    }

    public struct Rank: Codable, Sendable {
        public var rank: Int
        public var host: String
        public var stepSeconds: Summary
        /// Mean seconds per step of each phase.
        public var data: Double
        public var forward: Double
        public var backward: Double
        public var optimizer: Double
        public var allreduce: Double
        public var exposed: Double
        public var peakRssBytes: Int
        /// Largest proportional set size sampled: a page shared by n ranks counts 1/n in each.
        public var peakPssBytes: Int? = nil
        /// Model memory this rank allocated outside any shared window, bytes.
        public var privateBytes: Int? = nil
        /// Bytes per step this rank handed to collectives between ranks that do not share memory.
        public var exchangeBytesPerStep: Int? = nil
        /// What those collectives would have carried as uncompressed fp32 (with compression only).
        public var fp32BytesPerStep: Int? = nil
        /// Mean compression compute seconds per step (with compression only).
        public var compression: Double? = nil
        /// Resident memory at the 100th timed step and at the end (memory must stay flat).
        public var rssAtStep100Bytes: Int? = nil
        public var rssAtEndBytes: Int? = nil
        /// Raw per-step times.
        public var steps: [StepTimes]

        public init(rank: Int, host: String, stepSeconds: Summary, data: Double, forward: Double, backward: Double,
                    optimizer: Double, allreduce: Double, exposed: Double, peakRssBytes: Int,
                    rssAtStep100Bytes: Int? = nil, rssAtEndBytes: Int? = nil, steps: [StepTimes]) {
            self.rank = rank
            self.host = host
            self.stepSeconds = stepSeconds
            self.data = data
            self.forward = forward
            self.backward = backward
            self.optimizer = optimizer
            self.allreduce = allreduce
            self.exposed = exposed
            self.peakRssBytes = peakRssBytes
            self.rssAtStep100Bytes = rssAtStep100Bytes
            self.rssAtEndBytes = rssAtEndBytes
            self.steps = steps
        }
    }

    /// The schema this code writes, and those it reads.
    public static let currentSchema = 1
    public static let readableSchemas: ClosedRange<Int> = 1...currentSchema

    public var schema = RunReport.currentSchema
    public var tool = "vgg-dp"
    public var complete = true
    public var startedAt: String
    public var command: [String]

    public var model: VGGModel
    public var imageSize: Int
    public var classes: Int
    public var widthDivisor: Int
    public var mode: Mode
    public var objective: String?
    public var ranks: Int
    public var batchPerRank: Int
    public var globalBatch: Int
    public var warmup: Int
    public var steps: Int
    public var seed: UInt64
    public var parameters: Int
    public var forwardFlopsPerImage: Int
    /// FLOPs counted per image for this mode (forward, or forward + backward).
    public var stepFlopsPerImage: Int

    public var hosts: [String]
    public var blasThreads: Int
    public var blasCore: String
    public var blasConfig: String
    public var openblasCoretype: String?
    /// Set when vgg-dp chose the kernel (see `BLASKernel`): how and why.
    public var blasKernelChoice: String? = nil
    public var mpiLibrary: String
    public var mpiThreadLevel: String
    /// Convolution lowering asked for, and what each conv layer ran.
    public var conv: ConvAlgorithm? = nil
    public var convPerLayer: [ConvChoice]? = nil
    public var overlap: Bool
    /// The type gradients travelled in.
    public var allreduceDtype: GradientDType? = nil
    /// How the communication thread waited ("none" without one).
    public var commWait: String?
    public var bucketMb: Double
    /// The bucket plan, in the order backward completes the buckets.
    public var buckets: [BucketRecord]

    /// Step time of the slowest rank (the one with the largest mean).
    public var stepSeconds: Summary
    /// Global batch / slowest rank's mean step time.
    public var imagesPerSecond: Double
    public var gflopsPerSecond: Double
    public var gflopsPerSecondPerRank: Double
    /// Slowest rank's mean / mean of the ranks' means.
    public var stragglerRatio: Double
    public var allreduceSecondsPerStep: Double
    public var exposedSecondsPerStep: Double
    /// Mean over steps of the ranks' mean loss.
    public var lossPerStep: [Double]
    public var parameterChecksum: String
    public var peakRssBytes: Int
    public var perRank: [Rank]
    public var layers: [Layer]
    /// sgemm GFLOP/s of the `vgg-dp peak` probe each rank ran at start with
    /// its thread count (mean over ranks): this machine's limit.
    public var peakGflopsPerRank: Double? = nil
    /// gflopsPerSecondPerRank / peakGflopsPerRank.
    public var peakShare: Double? = nil
    /// Steps whose update was skipped for a NaN/Inf gradient (--skip-nonfinite).
    public var skippedSteps: Int? = nil
    /// Why the report is incomplete, when it is.
    public var note: String? = nil
    /// The exchange that ran (allreduce or host-shared; absent in forward mode and in older reports).
    public var exchange: ExchangeChoice? = nil
    /// Bytes of the host's shared window (parameters, momentum) with host-shared.
    public var sharedBytesPerHost: Int? = nil
    /// Sum over ranks of `per_rank.peak_pss_bytes`.
    public var peakPssBytesSum: Int? = nil
    /// Cores rank 0's host offered the job (absent in older reports).
    public var coresPerHost: Int? = nil
    /// The job's restarts by `scripts/launch.sh --max-restarts` (`--restart-log`);
    /// absent when the job was not launched that way, empty when it had none.
    public var restarts: [Restart]? = nil
    /// The memory plan of one rank (absent in older reports).
    public var memory: MemoryReport? = nil
    /// Gradient compression ("powersgd rank 4 min 65536"); nil: none.
    public var compression: String? = nil
    /// Rank 0's fp32-equivalent bytes per step / bytes it sent (with compression only).
    public var compressionRatio: Double? = nil
    /// Slowest rank's mean compression compute seconds per step (with compression only).
    public var compressionSecondsPerStep: Double? = nil

    /// Every field; the defaults are those of a complete vgg-dp report.
    public init(schema: Int = 1, tool: String = "vgg-dp", complete: Bool = true,
                startedAt: String, command: [String], model: VGGModel, imageSize: Int, classes: Int, widthDivisor: Int,
                mode: Mode, objective: String?, ranks: Int, batchPerRank: Int, globalBatch: Int, warmup: Int,
                steps: Int, seed: UInt64, parameters: Int, forwardFlopsPerImage: Int, stepFlopsPerImage: Int,
                hosts: [String], blasThreads: Int, blasCore: String, blasConfig: String, openblasCoretype: String?,
                blasKernelChoice: String? = nil, mpiLibrary: String, mpiThreadLevel: String,
                conv: ConvAlgorithm? = nil, convPerLayer: [ConvChoice]? = nil, overlap: Bool,
                allreduceDtype: GradientDType? = nil, commWait: String?, bucketMb: Double, buckets: [BucketRecord],
                stepSeconds: Summary, imagesPerSecond: Double, gflopsPerSecond: Double, gflopsPerSecondPerRank: Double,
                stragglerRatio: Double, allreduceSecondsPerStep: Double, exposedSecondsPerStep: Double,
                lossPerStep: [Double], parameterChecksum: String, peakRssBytes: Int, perRank: [Rank], layers: [Layer],
                peakGflopsPerRank: Double? = nil, peakShare: Double? = nil, skippedSteps: Int? = nil,
                note: String? = nil) {
        self.schema = schema
        self.tool = tool
        self.complete = complete
        self.startedAt = startedAt
        self.command = command
        self.model = model
        self.imageSize = imageSize
        self.classes = classes
        self.widthDivisor = widthDivisor
        self.mode = mode
        self.objective = objective
        self.ranks = ranks
        self.batchPerRank = batchPerRank
        self.globalBatch = globalBatch
        self.warmup = warmup
        self.steps = steps
        self.seed = seed
        self.parameters = parameters
        self.forwardFlopsPerImage = forwardFlopsPerImage
        self.stepFlopsPerImage = stepFlopsPerImage
        self.hosts = hosts
        self.blasThreads = blasThreads
        self.blasCore = blasCore
        self.blasConfig = blasConfig
        self.openblasCoretype = openblasCoretype
        self.blasKernelChoice = blasKernelChoice
        self.mpiLibrary = mpiLibrary
        self.mpiThreadLevel = mpiThreadLevel
        self.conv = conv
        self.convPerLayer = convPerLayer
        self.overlap = overlap
        self.allreduceDtype = allreduceDtype
        self.commWait = commWait
        self.bucketMb = bucketMb
        self.buckets = buckets
        self.stepSeconds = stepSeconds
        self.imagesPerSecond = imagesPerSecond
        self.gflopsPerSecond = gflopsPerSecond
        self.gflopsPerSecondPerRank = gflopsPerSecondPerRank
        self.stragglerRatio = stragglerRatio
        self.allreduceSecondsPerStep = allreduceSecondsPerStep
        self.exposedSecondsPerStep = exposedSecondsPerStep
        self.lossPerStep = lossPerStep
        self.parameterChecksum = parameterChecksum
        self.peakRssBytes = peakRssBytes
        self.perRank = perRank
        self.layers = layers
        self.peakGflopsPerRank = peakGflopsPerRank
        self.peakShare = peakShare
        self.skippedSteps = skippedSteps
        self.note = note
    }
}


extension RunReport {
    /// One bucket of the plan as the report records it: the plan's bucket
    /// (layer indices into `RunReport.layers`), its layers' names, and the
    /// mean time of its allreduce over timed steps on rank 0. In JSON it is
    /// one flat object: `index`, `layers` (the names), `offset`, `count`,
    /// `bytes`, `allreduce_seconds`.
    public struct BucketRecord: Encodable, Equatable, Sendable {
        public var bucket: Bucket
        /// Names of `bucket.layers`, in the same (backward) order.
        public var layerNames: [String]
        /// Mean over timed steps (rank 0), seconds.
        public var allreduceSeconds: Double

        public init(bucket: Bucket, layerNames: [String], allreduceSeconds: Double) {
            self.bucket = bucket
            self.layerNames = layerNames
            self.allreduceSeconds = allreduceSeconds
        }

        enum CodingKeys: String, CodingKey { case index, layers, offset, count, bytes, allreduceSeconds }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(bucket.index, forKey: .index)
            try c.encode(layerNames, forKey: .layers)
            try c.encode(bucket.offset, forKey: .offset)
            try c.encode(bucket.count, forKey: .count)
            try c.encode(bucket.bytes, forKey: .bytes)
            try c.encode(allreduceSeconds, forKey: .allreduceSeconds)
        }

        /// Decodes one bucket, finding its layers' indices by name in the
        /// report's layer list (`layerIndex`).
        init(from decoder: Decoder, layerIndex: [String: Int]) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let names = try c.decode([String].self, forKey: .layers)
            let index = try c.decode(Int.self, forKey: .index)
            let layers = try names.map { name -> Int in
                guard let i = layerIndex[name] else {
                    throw DecodingError.dataCorruptedError(forKey: .layers, in: c, debugDescription:
                        "bucket \(index) names layer \(name), which the report's layers do not have")
                }
                return i
            }
            _ = try c.decode(Int.self, forKey: .bytes)  // count · 4; required as before, not stored twice
            bucket = Bucket(index: index, layers: layers, offset: try c.decode(Int.self, forKey: .offset),
                            count: try c.decode(Int.self, forKey: .count))
            layerNames = names
            allreduceSeconds = try c.decode(Double.self, forKey: .allreduceSeconds)
        }
    }

    /// What one convolution ran: `"conv1_1:winograd4x4"` in JSON.
    public struct ConvChoice: Codable, Equatable, Sendable {
        public var layer: String
        public var algorithm: ConvAlgorithm

        public init(layer: String, algorithm: ConvAlgorithm) {
            self.layer = layer
            self.algorithm = algorithm
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            let text = try c.decode(String.self)
            guard let colon = text.lastIndex(of: ":"),
                  let algorithm = ConvAlgorithm(rawValue: String(text[text.index(after: colon)...])) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "\(text) is not LAYER:ALGORITHM")
            }
            layer = String(text[..<colon])
            self.algorithm = algorithm
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            try c.encode("\(layer):\(algorithm.rawValue)")
        }
    }
}

/// Decoding by hand only because a bucket names its layers, and their
/// indices come from the report's own `layers`; every other field decodes
/// as the synthesised code would (optional fields may be missing, the rest
/// must be there). Encoding is synthesised.
extension RunReport: Decodable {
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schema = try c.decode(Int.self, forKey: .schema)
        tool = try c.decode(String.self, forKey: .tool)
        complete = try c.decode(Bool.self, forKey: .complete)
        startedAt = try c.decode(String.self, forKey: .startedAt)
        command = try c.decode([String].self, forKey: .command)
        model = try c.decode(VGGModel.self, forKey: .model)
        imageSize = try c.decode(Int.self, forKey: .imageSize)
        classes = try c.decode(Int.self, forKey: .classes)
        widthDivisor = try c.decode(Int.self, forKey: .widthDivisor)
        mode = try c.decode(Mode.self, forKey: .mode)
        objective = try c.decodeIfPresent(String.self, forKey: .objective)
        ranks = try c.decode(Int.self, forKey: .ranks)
        batchPerRank = try c.decode(Int.self, forKey: .batchPerRank)
        globalBatch = try c.decode(Int.self, forKey: .globalBatch)
        warmup = try c.decode(Int.self, forKey: .warmup)
        steps = try c.decode(Int.self, forKey: .steps)
        seed = try c.decode(UInt64.self, forKey: .seed)
        parameters = try c.decode(Int.self, forKey: .parameters)
        forwardFlopsPerImage = try c.decode(Int.self, forKey: .forwardFlopsPerImage)
        stepFlopsPerImage = try c.decode(Int.self, forKey: .stepFlopsPerImage)
        hosts = try c.decode([String].self, forKey: .hosts)
        blasThreads = try c.decode(Int.self, forKey: .blasThreads)
        blasCore = try c.decode(String.self, forKey: .blasCore)
        blasConfig = try c.decode(String.self, forKey: .blasConfig)
        openblasCoretype = try c.decodeIfPresent(String.self, forKey: .openblasCoretype)
        blasKernelChoice = try c.decodeIfPresent(String.self, forKey: .blasKernelChoice)
        mpiLibrary = try c.decode(String.self, forKey: .mpiLibrary)
        mpiThreadLevel = try c.decode(String.self, forKey: .mpiThreadLevel)
        conv = try c.decodeIfPresent(ConvAlgorithm.self, forKey: .conv)
        convPerLayer = try c.decodeIfPresent([ConvChoice].self, forKey: .convPerLayer)
        overlap = try c.decode(Bool.self, forKey: .overlap)
        allreduceDtype = try c.decodeIfPresent(GradientDType.self, forKey: .allreduceDtype)
        commWait = try c.decodeIfPresent(String.self, forKey: .commWait)
        bucketMb = try c.decode(Double.self, forKey: .bucketMb)
        stepSeconds = try c.decode(Summary.self, forKey: .stepSeconds)
        imagesPerSecond = try c.decode(Double.self, forKey: .imagesPerSecond)
        gflopsPerSecond = try c.decode(Double.self, forKey: .gflopsPerSecond)
        gflopsPerSecondPerRank = try c.decode(Double.self, forKey: .gflopsPerSecondPerRank)
        stragglerRatio = try c.decode(Double.self, forKey: .stragglerRatio)
        allreduceSecondsPerStep = try c.decode(Double.self, forKey: .allreduceSecondsPerStep)
        exposedSecondsPerStep = try c.decode(Double.self, forKey: .exposedSecondsPerStep)
        lossPerStep = try c.decode([Double].self, forKey: .lossPerStep)
        parameterChecksum = try c.decode(String.self, forKey: .parameterChecksum)
        peakRssBytes = try c.decode(Int.self, forKey: .peakRssBytes)
        perRank = try c.decode([Rank].self, forKey: .perRank)
        layers = try c.decode([Layer].self, forKey: .layers)
        peakGflopsPerRank = try c.decodeIfPresent(Double.self, forKey: .peakGflopsPerRank)
        peakShare = try c.decodeIfPresent(Double.self, forKey: .peakShare)
        skippedSteps = try c.decodeIfPresent(Int.self, forKey: .skippedSteps)
        note = try c.decodeIfPresent(String.self, forKey: .note)
        exchange = try c.decodeIfPresent(ExchangeChoice.self, forKey: .exchange)
        sharedBytesPerHost = try c.decodeIfPresent(Int.self, forKey: .sharedBytesPerHost)
        peakPssBytesSum = try c.decodeIfPresent(Int.self, forKey: .peakPssBytesSum)
        coresPerHost = try c.decodeIfPresent(Int.self, forKey: .coresPerHost)
        restarts = try c.decodeIfPresent([Restart].self, forKey: .restarts)
        memory = try c.decodeIfPresent(MemoryReport.self, forKey: .memory)
        compression = try c.decodeIfPresent(String.self, forKey: .compression)
        compressionRatio = try c.decodeIfPresent(Double.self, forKey: .compressionRatio)
        compressionSecondsPerStep = try c.decodeIfPresent(Double.self, forKey: .compressionSecondsPerStep)

        let layerIndex = Dictionary(layers.enumerated().map { ($0.element.name, $0.offset) }, uniquingKeysWith: { a, _ in a })
        var list = try c.nestedUnkeyedContainer(forKey: .buckets)
        var buckets: [BucketRecord] = []
        while !list.isAtEnd {
            buckets.append(try BucketRecord(from: try list.superDecoder(), layerIndex: layerIndex))
        }
        self.buckets = buckets
    }
}

extension RunReport {
    /// Writes JSON atomically: a temporary file in the same folder, then rename.
    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(try encoder.encode(self), to: path)
    }

    public static func read(from path: String) throws -> RunReport {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(RunReport.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }
}
