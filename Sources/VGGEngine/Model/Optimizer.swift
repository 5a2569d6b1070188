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

/// Reductions of several ranks' gradient arenas, for ranks that share memory.
extension SGD {
    /// One pass over `range`: g = Σ_j gradients[j][i] (j in order), then the
    /// SGD update of `step` with g in place of the gradient, on `parameters`
    /// and `velocity`. Returns false when any sum is NaN or ±Inf (the update
    /// is applied either way; the caller stops or skips the step).
    public func stepSumming(_ gradients: [UnsafeMutablePointer<Float>], parameters: UnsafeMutablePointer<Float>,
                            velocity: UnsafeMutablePointer<Float>, range: ArenaSlice, gradientScale: Float) -> Bool {
        let lr = learningRate, mu = momentum, wd = weightDecay, scale = gradientScale
        let w = parameters + range.offset, v = velocity + range.offset, n = range.count
        let g = gradients.map { $0 + range.offset }
        // NaN and ±Inf have every exponent bit set: adding one to the exponent
        // field carries into the sign bit only for them. An integer OR keeps
        // the loop vectorisable (a float sum would not be reassociated).
        var bad: UInt32 = 0
        @inline(__always) func update(_ i: Int, _ sum: Float) {
            bad |= ((sum.bitPattern & 0x7F80_0000) &+ 0x0080_0000) >> 31
            let d = sum * scale + wd * w[i]
            let nv = mu * v[i] + d
            v[i] = nv
            w[i] -= lr * nv
        }
        // The common rank counts written out, so that each loop vectorises.
        switch g.count {
        case 1: let a = g[0]; for i in 0..<n { update(i, a[i]) }
        case 2: let a = g[0], b = g[1]; for i in 0..<n { update(i, a[i] + b[i]) }
        case 3: let a = g[0], b = g[1], c = g[2]; for i in 0..<n { update(i, a[i] + b[i] + c[i]) }
        case 4: let a = g[0], b = g[1], c = g[2], e = g[3]; for i in 0..<n { update(i, a[i] + b[i] + c[i] + e[i]) }
        default:
            for i in 0..<n {
                var sum = g[0][i]
                for j in 1..<g.count { sum += g[j][i] }
                update(i, sum)
            }
        }
        return bad == 0
    }

    /// `into[i] = Σ_j gradients[j][i]` over `range` (j in order; `into` may be one of them).
    public static func sum(_ gradients: [UnsafeMutablePointer<Float>], into: UnsafeMutablePointer<Float>, range: ArenaSlice) {
        let out = into + range.offset, n = range.count
        let g = gradients.map { $0 + range.offset }
        switch g.count {
        case 1: if g[0] != out { out.update(from: g[0], count: n) }
        case 2: let a = g[0], b = g[1]; for i in 0..<n { out[i] = a[i] + b[i] }
        case 3: let a = g[0], b = g[1], c = g[2]; for i in 0..<n { out[i] = a[i] + b[i] + c[i] }
        case 4: let a = g[0], b = g[1], c = g[2], e = g[3]; for i in 0..<n { out[i] = a[i] + b[i] + c[i] + e[i] }
        default:
            for i in 0..<n {
                var sum = g[0][i]
                for j in 1..<g.count { sum += g[j][i] }
                out[i] = sum
            }
        }
    }
}
