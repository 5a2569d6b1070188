import Vocabulary

/// A VGG network with all its memory: parameters and gradients in two arenas
/// of the same layout, one activation buffer per layer output, two gradient
/// buffers used in turn by backward, and one convolution workspace shared by
/// all convolutions (`ConvWorkspace`: im2col columns or Winograd tiles, the
/// transformed filter, per-thread scratch). Everything is allocated here,
/// once; forward and backward allocate nothing. The large buffers are
/// `Pages`: resident only once written, so a forward-only run does not pay
/// for the gradients.
public final class Network {
    public let spec: NetworkSpec
    public let batch: Int
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

    let activations: [UnsafeMutablePointer<Float>]
    let gradientBuffers: [UnsafeMutablePointer<Float>]
    /// Floats of each activation buffer, then of each gradient buffer.
    private let bufferFloats: [Int]
    let convWorkspace: ConvWorkspace
    let logitsGrad: UnsafeMutablePointer<Float>
    /// Floats of the shared im2col / Winograd-tile buffer.
    public let workspaceFloats: Int
    /// Bytes allocated for activations, gradient buffers and workspace.
    public let activationBytes: Int
    /// The algorithm asked for, and what each layer runs (nil: not a convolution).
    public let convAlgorithm: ConvAlgorithm
    public let convAlgorithms: [ConvAlgorithm?]

    /// Default convolution workspace budget: 8 Mi floats (32 MiB) for the
    /// im2col column buffer or a Winograd layer's two tile buffers.
    public static let defaultWorkspaceFloats = 1 << 23

    /// - convAlgorithm: how the 3×3 convolutions are lowered to sgemm
    ///   (`ConvAlgorithm`); im2col by default.
    /// - workspaceBudget: floats of the shared chunk buffer (see `ConvWorkspace`;
    ///   a Winograd network also holds one transformed filter, ≤ 36 MiB).
    public init(spec: NetworkSpec, batch: Int, keepProbability: Float = 0.5, seed: UInt64 = 0,
                workspaceBudget: Int = Network.defaultWorkspaceFloats,
                convAlgorithm: ConvAlgorithm = .im2col) throws {
        try spec.validate()
        guard batch >= 1 else { throw EngineError.invalid("batch size must be at least 1, got \(batch)") }
        self.spec = spec
        self.batch = batch
        let specs = spec.layers
        parameters = FloatArena(count: spec.parameterCount)
        gradients = FloatArena(count: spec.parameterCount)

        images = .allocate(capacity: batch * spec.imageSize * spec.imageSize * 3)
        images.initialize(repeating: 0, count: batch * spec.imageSize * spec.imageSize * 3)
        labels = .allocate(capacity: batch)
        labels.initialize(repeating: 0, count: batch)

        var bytes = 0
        var sizes: [Int] = []
        func buffer(_ count: Int) -> UnsafeMutablePointer<Float> {
            bytes += count * 4
            sizes.append(count)
            return Pages.allocate(floats: count)
        }
        activations = specs.map { buffer(batch * $0.outputElementsPerImage) }
        let largest = specs.map { batch * max($0.inputElementsPerImage, $0.outputElementsPerImage) }.max() ?? 1
        gradientBuffers = [buffer(largest), buffer(largest)]
        bufferFloats = sizes
        self.convAlgorithm = convAlgorithm
        convAlgorithms = specs.map { s in
            guard case let .conv(_, c, _, h, w) = s else { return nil }
            return convAlgorithm.resolved(inChannels: c, height: h, width: w)
        }
        convWorkspace = ConvWorkspace(specs: specs, batch: batch, budget: max(1, workspaceBudget), algorithm: convAlgorithm)
        workspaceFloats = convWorkspace.floats
        logitsGrad = gradientBuffers[(specs.count - 1) % 2]
        activationBytes = bytes + convWorkspace.bytes

        // Layer i reads the gradient of its output from buffer i % 2 and writes
        // the gradient of its input to buffer (i + 1) % 2, which is where
        // layer i - 1 reads it.
        var built: [Layer] = []
        var offset = 0
        for (i, s) in specs.enumerated() {
            let io = LayerBuffers(input: i == 0 ? images : activations[i - 1],
                                  output: activations[i],
                                  inputGrad: i == 0 ? nil : gradientBuffers[(i + 1) % 2],
                                  outputGrad: gradientBuffers[i % 2])
            let slice = ArenaSlice(offset: offset, count: s.parameterCount)
            let params = LayerParameters(weights: parameters.base + offset,
                                         bias: parameters.base + offset + s.weightCount,
                                         weightGrad: gradients.base + offset,
                                         biasGrad: gradients.base + offset + s.weightCount)
            switch s {
            case .conv:
                built.append(Conv2D(spec: s, parameterSlice: slice, io: io, parameters: params,
                                    workspace: convWorkspace, algorithm: convAlgorithm, batch: batch))
            case .maxPool:
                built.append(MaxPool2D(spec: s, io: io, batch: batch))
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
        initializeParameters(seed: seed)
    }

    deinit {
        for (b, n) in zip(activations + gradientBuffers, bufferFloats) { Pages.free(b, floats: n) }
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
