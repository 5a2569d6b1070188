/// SGD with momentum and weight decay, PyTorch's form:
///   g ← scale·grad + decay·w;  v ← momentum·v + g;  w ← w − lr·v
/// `scale` folds the 1/N of gradient averaging into the one pass that
/// already reads every gradient. Works on any slice of the arenas, so each
/// allreduce bucket can be stepped as soon as it has arrived.
public struct SGD: Codable, Equatable, Sendable {
    public var learningRate: Float
    public var momentum: Float
    public var weightDecay: Float

    public init(learningRate: Float = 0.01, momentum: Float = 0.9, weightDecay: Float = 5e-4) {
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
    }

    public func step(parameters: FloatArena, gradients: FloatArena, velocity: FloatArena,
                     slice: ArenaSlice, gradientScale: Float) {
        let w = parameters.base + slice.offset
        let g = gradients.base + slice.offset
        let v = velocity.base + slice.offset
        let lr = learningRate, mu = momentum, wd = weightDecay
        for i in 0..<slice.count {
            let d = g[i] * gradientScale + wd * w[i]
            let nv = mu * v[i] + d
            v[i] = nv
            w[i] -= lr * nv
        }
    }
}
