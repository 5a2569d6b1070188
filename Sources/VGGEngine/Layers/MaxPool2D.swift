/// 2×2 max pooling, stride 2, NHWC. Forward stores which of the four inputs
/// won (0...3) so that backward is a scatter without comparisons.
public final class MaxPool2D: Layer {
    public let spec: LayerSpec
    public let parameterSlice = ArenaSlice(offset: 0, count: 0)
    public let gemmSeconds = 0.0
    let channels: Int, height: Int, width: Int
    let io: LayerBuffers
    let argmax: UnsafeMutablePointer<UInt8>

    public init(spec: LayerSpec, io: LayerBuffers, batch: Int) {
        guard case let .maxPool(_, c, h, w) = spec else { preconditionFailure("MaxPool2D needs a pool spec") }
        self.spec = spec
        channels = c; height = h; width = w
        self.io = io
        argmax = .allocate(capacity: batch * (h / 2) * (w / 2) * c)
    }

    deinit { argmax.deallocate() }

    public func forward(batch: Int, context: StepContext) {
        let c = channels, w = width, oh = height / 2, ow = width / 2
        for n in 0..<batch {
            let x = io.input + n * height * w * c
            let y = io.output + n * oh * ow * c
            let am = argmax + n * oh * ow * c
            for i in 0..<oh {
                for j in 0..<ow {
                    let x00 = x + ((2 * i) * w + 2 * j) * c
                    let x01 = x00 + c, x10 = x00 + w * c, x11 = x10 + c
                    let o = (i * ow + j) * c
                    for k in 0..<c {
                        var best = x00[k], at: UInt8 = 0
                        if x01[k] > best { best = x01[k]; at = 1 }
                        if x10[k] > best { best = x10[k]; at = 2 }
                        if x11[k] > best { best = x11[k]; at = 3 }
                        y[o + k] = best
                        am[o + k] = at
                    }
                }
            }
        }
    }

    /// Each input belongs to exactly one window, so every element of the input
    /// gradient is written once: no zero-fill first.
    public func backward(batch: Int, context: StepContext) {
        guard let dxAll = io.inputGrad else { return }
        let c = channels, w = width, oh = height / 2, ow = width / 2
        for n in 0..<batch {
            let dx = dxAll + n * height * w * c
            let dy = io.outputGrad + n * oh * ow * c
            let am = argmax + n * oh * ow * c
            for i in 0..<oh {
                for j in 0..<ow {
                    let d00 = dx + ((2 * i) * w + 2 * j) * c
                    let d01 = d00 + c, d10 = d00 + w * c, d11 = d10 + c
                    let o = (i * ow + j) * c
                    for k in 0..<c {
                        let g = dy[o + k], at = am[o + k]
                        d00[k] = at == 0 ? g : 0
                        d01[k] = at == 1 ? g : 0
                        d10[k] = at == 2 ? g : 0
                        d11[k] = at == 3 ? g : 0
                    }
                }
            }
        }
    }
}
