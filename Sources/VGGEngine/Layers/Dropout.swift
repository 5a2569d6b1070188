/// Inverted dropout: in training each unit is kept with probability
/// `keepProbability` and scaled by 1/keep, so inference is the identity.
/// The mask of unit u of global sample g at step t is a pure function of
/// (seed, layer, t, g, u): the same on any rank and any batch split.
public final class Dropout: Layer {
    public let spec: LayerSpec
    public let parameterSlice = ArenaSlice(offset: 0, count: 0)
    public let gemmSeconds = 0.0
    public var keepProbability: Float
    let features: Int
    let seed: UInt64
    let layerIndex: Int
    let io: LayerBuffers
    /// 0 or 1/keep for each unit of the batch, from the last forward.
    let mask: UnsafeMutablePointer<Float>

    public init(spec: LayerSpec, layerIndex: Int, keepProbability: Float, seed: UInt64, io: LayerBuffers, batch: Int) {
        guard case let .dropout(_, f) = spec else { preconditionFailure("Dropout needs a dropout spec") }
        self.spec = spec
        features = f
        self.keepProbability = keepProbability
        self.seed = seed
        self.layerIndex = layerIndex
        self.io = io
        mask = .allocate(capacity: batch * f)
    }

    deinit { mask.deallocate() }

    var active: Bool { keepProbability < 1 }

    public func forward(batch: Int, context: StepContext) {
        let n = batch * features
        guard context.training && active else {
            io.output.update(from: io.input, count: n)
            mask.update(repeating: 1, count: n)
            return
        }
        let scale = 1 / keepProbability
        for r in 0..<batch {
            let key = CounterRandom.key(seed, RandomStream.dropout.rawValue,
                                        UInt64(layerIndex) << 40 | UInt64(context.step),
                                        UInt64(context.firstSample + r))
            let m = mask + r * features, x = io.input + r * features, y = io.output + r * features
            for u in 0..<features {
                let keep: Float = CounterRandom.unit(key, u) < keepProbability ? scale : 0
                m[u] = keep
                y[u] = x[u] * keep
            }
        }
    }

    public func backward(batch: Int, context: StepContext) {
        guard let dx = io.inputGrad else { return }
        let dy = io.outputGrad
        for i in 0..<(batch * features) { dx[i] = dy[i] * mask[i] }
    }
}
