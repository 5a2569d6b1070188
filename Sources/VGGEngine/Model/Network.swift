import Vocabulary

/// A VGG network with all its memory: parameters and gradients in two arenas
/// of the same layout, one activation arena laid out by `MemoryPlan` (every
/// layer's output and, in training, every output's gradient, each placed
/// over buffers that are dead by the time it is written), and one
/// convolution workspace shared by all convolutions (`ConvWorkspace`: im2col
/// columns or Winograd tiles, the transformed filter, per-thread scratch).
/// Everything is allocated here, once; forward and backward allocate
/// nothing. The large buffers are `Pages`: resident only once written, so a
/// forward-only run does not pay for the gradients.
///
/// A training network keeps what backward reads (see `MemoryPlan`): a
/// convolution that feeds a max-pool leaves ReLU's backward to the pool, and
/// its output is overwritten after the pool's forward. An inference network
/// keeps only what the next forward reads (two buffers of the largest output
/// in turn, for VGG) and cannot run backward.
public final class Network {
    public let spec: NetworkSpec
    public let batch: Int
    public let purpose: NetworkPurpose
    /// The layout and bytes of this network's memory (no optimizer state: the optimizer owns that).
    public let memory: MemoryPlan
    public let layers: [Layer]
    public let parameters: FloatArena
    public let gradients: FloatArena
    /// Images of the current batch, NHWC, and their labels.
    public let images: UnsafeMutablePointer<Float>
    public let labels: UnsafeMutablePointer<Int32>
    /// Per-layer wall time of the last forward and backward, in seconds.
    public private(set) var forwardSeconds: [Double]
    public private(set) var backwardSeconds: [Double]
    /// When each layer's last forward and backward started (Clock seconds).
    public private(set) var forwardStart: [Double]
    public private(set) var backwardStart: [Double]
    /// The part of those spent inside sgemm.
    public private(set) var forwardGemmSeconds: [Double]
    public private(set) var backwardGemmSeconds: [Double]

    /// The activation arena, and each layer's output in it. In training the
    /// output of a convolution that feeds a max-pool holds it only until the
    /// pool's forward has run.
    private let arena: UnsafeMutablePointer<Float>
    let activations: [UnsafeMutablePointer<Float>]
    let convWorkspace: ConvWorkspace
    let logitsGrad: UnsafeMutablePointer<Float>
    /// Floats of the shared im2col / Winograd-tile buffer.
    public let workspaceFloats: Int
    /// Bytes allocated for the activation arena and the workspace.
    public let activationBytes: Int
    /// The algorithm asked for, and what each layer runs (nil: not a convolution).
    public let convAlgorithm: ConvAlgorithm
    public let convAlgorithms: [ConvAlgorithm?]

    /// Default convolution workspace budget: 8 Mi floats (32 MiB) for the
    /// im2col column buffer or a Winograd layer's two tile buffers.
    public static let defaultWorkspaceFloats = 1 << 23

    /// - purpose: `.training` keeps what backward reads; `.inference` only
    ///   what forward reads (`backward` is then refused).
    /// - convAlgorithm: how the 3×3 convolutions are lowered to sgemm
    ///   (`ConvAlgorithm`); im2col by default.
    /// - workspaceBudget: floats of the shared chunk buffer (see `ConvWorkspace`).
    ///   A Winograd network also holds one transformed filter, outside the
    ///   budget: α²·C·K floats for its largest Winograd layer, e.g. 36 MiB
    ///   for F(4×4) and 64 MiB for F(6×6) on a 512×512 layer.
    public init(spec: NetworkSpec, batch: Int, purpose: NetworkPurpose = .training,
                keepProbability: Float = 0.5, seed: UInt64 = 0,
                workspaceBudget: Int = Network.defaultWorkspaceFloats,
                convAlgorithm: ConvAlgorithm = .im2col, storage: ParameterStorage? = nil) throws {
        try spec.validate()
        guard batch >= 1 else { throw EngineError.invalid("batch size must be at least 1, got \(batch)") }
        self.spec = spec
        self.batch = batch
        self.purpose = purpose
        let specs = spec.layers
        if let storage {
            guard storage.parameters.count == spec.parameterCount, storage.gradients.count == spec.parameterCount else {
                throw EngineError.invalid("parameter storage holds \(storage.parameters.count) floats, the model has \(spec.parameterCount)")
            }
        }
        parameters = storage?.parameters ?? FloatArena(count: spec.parameterCount)
        gradients = storage?.gradients ?? FloatArena(count: spec.parameterCount)

        images = .allocate(capacity: batch * spec.imageSize * spec.imageSize * 3)
        images.initialize(repeating: 0, count: batch * spec.imageSize * spec.imageSize * 3)
        labels = .allocate(capacity: batch)
        labels.initialize(repeating: 0, count: batch)

        let plan = MemoryPlan(spec: spec, batch: batch, purpose: purpose, convAlgorithm: convAlgorithm,
                              workspaceBudget: max(1, workspaceBudget))
        memory = plan
        let base = Pages.allocate(floats: plan.arenaFloats)
        arena = base
        let training = purpose == .training
        activations = specs.indices.map { base + plan.offset(of: .output, layer: $0)! }
        let outputGrads: [UnsafeMutablePointer<Float>?] = specs.indices.map { i in
            plan.offset(of: .outputGradient, layer: i).map { base + $0 }
        }
        logitsGrad = outputGrads[specs.count - 1]!
        self.convAlgorithm = convAlgorithm
        convAlgorithms = specs.map { s in
            guard case let .conv(_, c, _, h, w) = s else { return nil }
            return convAlgorithm.resolved(inChannels: c, height: h, width: w)
        }
        convWorkspace = ConvWorkspace(specs: specs, batch: batch, budget: max(1, workspaceBudget), algorithm: convAlgorithm)
        workspaceFloats = convWorkspace.floats
        activationBytes = plan.arenaFloats * 4 + convWorkspace.bytes

        // Layer i reads the gradient of its output where the plan put it and
        // writes the gradient of its input over the gradient of layer i − 1's
        // output. An inference network's layers get the logits' gradient as a
        // placeholder: `backward` refuses to run there.
        var built: [Layer] = []
        var offset = 0
        for (i, s) in specs.enumerated() {
            let io = LayerBuffers(input: i == 0 ? images : activations[i - 1],
                                  output: activations[i],
                                  inputGrad: i == 0 ? nil : outputGrads[i - 1],
                                  outputGrad: outputGrads[i] ?? logitsGrad)
            let slice = ArenaSlice(offset: offset, count: s.parameterCount)
            let params = LayerParameters(weights: parameters.base + offset,
                                         bias: parameters.base + offset + s.weightCount,
                                         weightGrad: gradients.base + offset,
                                         biasGrad: gradients.base + offset + s.weightCount)
            let poolNext: Bool
            if i + 1 < specs.count, case .maxPool = specs[i + 1] { poolNext = true } else { poolNext = false }
            let convBefore: Bool
            if i > 0, case .conv = specs[i - 1] { convBefore = true } else { convBefore = false }
            switch s {
            case .conv:
                built.append(Conv2D(spec: s, parameterSlice: slice, io: io, parameters: params,
                                    workspace: convWorkspace, algorithm: convAlgorithm, batch: batch,
                                    reluAppliedByPool: training && poolNext))
            case .maxPool:
                built.append(MaxPool2D(spec: s, io: io, batch: batch, appliesReLU: training && convBefore,
                                       keepsArgmax: training))
            case .linear:
                built.append(Linear(spec: s, parameterSlice: slice, io: io, parameters: params))
            case .dropout:
                built.append(Dropout(spec: s, layerIndex: i, keepProbability: keepProbability, seed: seed, io: io, batch: batch))
            }
            offset += s.parameterCount
        }
        layers = built
        forwardSeconds = Array(repeating: 0, count: specs.count)
        backwardSeconds = Array(repeating: 0, count: specs.count)
        forwardGemmSeconds = Array(repeating: 0, count: specs.count)
        forwardStart = forwardGemmSeconds
        backwardStart = forwardGemmSeconds
        backwardGemmSeconds = Array(repeating: 0, count: specs.count)
        if storage?.initializes ?? true { initializeParameters(seed: seed) }
    }

    /// Parameters and gradients held elsewhere (e.g. parameters shared by the
    /// ranks of a host): the two arenas, and whether this network writes the
    /// initial parameters (false when another process sharing them does).
    public struct ParameterStorage {
        public var parameters: FloatArena
        public var gradients: FloatArena
        public var initializes: Bool
        public init(parameters: FloatArena, gradients: FloatArena, initializes: Bool) {
            self.parameters = parameters
            self.gradients = gradients
            self.initializes = initializes
        }
    }

    deinit {
        Pages.free(arena, floats: memory.arenaFloats)
        images.deallocate()
        labels.deallocate()
    }

    /// The notebook's initialisation: Glorot/Xavier uniform weights
    /// (limit √(6/(fan_in+fan_out)), with fans that include the 3×3 receptive
    /// field for convolutions), conv biases 0, FC biases 0.1. Each tensor's
    /// values are a function of (seed, layer index, element) only.
    ///
    /// `.he` (Kaiming uniform, limit √(6/fan_in), FC biases 0.1 too) keeps the
    /// activations' scale through the ReLU stack: with Glorot a deep VGG's
    /// signal shrinks layer by layer and small problems learn slowly at first.
    public func initializeParameters(seed: UInt64, scheme: InitScheme = .glorot) {
        for (i, layer) in layers.enumerated() {
            let s = layer.spec
            let fans: (Int, Int)
            let biasValue: Float
            switch s {
            case let .conv(_, c, k, _, _): fans = (9 * c, 9 * k); biasValue = 0
            case let .linear(_, inF, outF, _): fans = (inF, outF); biasValue = 0.1
            default: continue
            }
            let limit = scheme == .glorot ? Float((6.0 / Double(fans.0 + fans.1)).squareRoot())
                                          : Float((6.0 / Double(fans.0)).squareRoot())
            let key = CounterRandom.key(seed, RandomStream.weights.rawValue, UInt64(i))
            let w = parameters.base + layer.parameterSlice.offset
            for j in 0..<s.weightCount { w[j] = limit * CounterRandom.symmetric(key, j) }
            (w + s.weightCount).update(repeating: biasValue, count: s.biasCount)
        }
    }

    /// Weight initialisation: the notebook's Glorot/Xavier uniform, or He/Kaiming uniform.
    public enum InitScheme: String, CaseIterable, Codable, Sendable { case glorot, he }

    public var dropoutKeepProbability: Float {
        get { (layers.first { $0 is Dropout } as? Dropout)?.keepProbability ?? 1 }
        set { for case let d as Dropout in layers { d.keepProbability = newValue } }
    }

    /// Logits of the last forward, [batch, classes].
    public var logits: UnsafeMutablePointer<Float> { activations[activations.count - 1] }

    public func forward(context: StepContext) {
        for (i, layer) in layers.enumerated() {
            let t0 = Clock.now()
            layer.forward(batch: batch, context: context)
            forwardStart[i] = t0
            forwardSeconds[i] = Clock.now() - t0
            forwardGemmSeconds[i] = layer.gemmSeconds
        }
    }

    /// Computes the objective on the last forward's logits and seeds backward.
    public func loss(_ objective: Objective) -> Double {
        objective.lossAndGradient(logits: logits, labels: labels, batch: batch, classes: spec.classes, grad: logitsGrad)
    }

    /// Runs backward from the last layer to the first. `gradientsReady(i)` is
    /// called as soon as layer i's parameter gradients are final, while the
    /// layers before it are still to run: the hook for overlapping allreduce.
    public func backward(context: StepContext, gradientsReady: (Int) -> Void = { _ in }) {
        precondition(purpose == .training, "Network: backward on a network built for inference")
        for i in stride(from: layers.count - 1, through: 0, by: -1) {
            let t0 = Clock.now()
            layers[i].backward(batch: batch, context: context)
            backwardStart[i] = t0
            backwardSeconds[i] = Clock.now() - t0
            backwardGemmSeconds[i] = layers[i].gemmSeconds
            if layers[i].parameterSlice.count > 0 { gradientsReady(i) }
        }
    }

    /// Classes predicted by the last forward (the notebook's argmax).
    public func predictions() -> [Int] {
        (0..<batch).map { r in
            let z = logits + r * spec.classes
            var best = 0
            for j in 1..<spec.classes where z[j] > z[best] { best = j }
            return best
        }
    }
}
