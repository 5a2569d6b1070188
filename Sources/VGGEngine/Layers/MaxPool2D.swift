import Foundation

/// 2×2 max pooling, stride 2, NHWC. Forward stores which of the four inputs
/// won (0...3), one byte per output (the layer's mask), so that backward is
/// a scatter without comparisons that never reads the input.
///
/// With `appliesReLU` (the layer before is a convolution with its fused
/// ReLU), backward also applies that ReLU's backward: the input at the argmax
/// is the pool's output, so the ReLU there was active exactly when the output
/// is > 0, and every other input gets 0 anyway. The convolution's output is
/// then never read after this forward.
///
/// Without `keepsArgmax` (an inference network) forward writes the argmax
/// into one reused vector of `channels` bytes per thread, and backward
/// cannot run.
public final class MaxPool2D: Layer {
    public let spec: LayerSpec
    public let parameterSlice = ArenaSlice(offset: 0, count: 0)
    public let gemmSeconds = 0.0
    let channels: Int, height: Int, width: Int
    let io: LayerBuffers
    let argmax: UnsafeMutablePointer<UInt8>
    let appliesReLU: Bool
    let keepsArgmax: Bool

    public init(spec: LayerSpec, io: LayerBuffers, batch: Int, appliesReLU: Bool = false, keepsArgmax: Bool = true) {
        guard case let .maxPool(_, c, h, w) = spec else { preconditionFailure("MaxPool2D needs a pool spec") }
        self.spec = spec
        channels = c; height = h; width = w
        self.io = io
        self.appliesReLU = appliesReLU
        self.keepsArgmax = keepsArgmax
        argmax = .allocate(capacity: keepsArgmax ? Self.maskBytes(spec: spec, batch: batch)
                                                 : c * max(1, ProcessInfo.processInfo.activeProcessorCount))
    }

    /// Bytes of the argmax a training network keeps: one per output.
    public static func maskBytes(spec: LayerSpec, batch: Int) -> Int { batch * spec.outputElementsPerImage }

    deinit { argmax.deallocate() }

    /// Output rows (image × row) split over the BLAS thread count.
    var parts: Int { max(1, min(BLAS.threads, ProcessInfo.processInfo.activeProcessorCount)) }

    public func forward(batch: Int, context: StepContext) {
        let c = channels, w = width, oh = height / 2, ow = width / 2
        let x = io.input, y = io.output, am = argmax, keep = keepsArgmax
        parallelRanges(batch * oh, parts: parts) { rows, slot in
            for r in rows {
                let n = r / oh, i = r - n * oh
                for j in 0..<ow {
                    let x00 = x + ((n * height + 2 * i) * w + 2 * j) * c
                    let x01 = x00 + c, x10 = x00 + w * c, x11 = x10 + c
                    let o = ((n * oh + i) * ow + j) * c
                    let ao = am + (keep ? o : slot * c)
                    var k = 0
                    while k + 8 <= c {
                        var best = F8.load(x00 + k), at = SIMD8<Int32>.zero
                        let v1 = F8.load(x01 + k), v2 = F8.load(x10 + k), v3 = F8.load(x11 + k)
                        // (`replacing`, not `replace`, and float compares: the forms
                        // Swift 6.3 compiles to SSE selects rather than lane loops.)
                        var m = v1 .> best
                        best = best.replacing(with: v1, where: m); at = at.replacing(with: 1, where: m)
                        m = v2 .> best
                        best = best.replacing(with: v2, where: m); at = at.replacing(with: 2, where: m)
                        m = v3 .> best
                        best = best.replacing(with: v3, where: m); at = at.replacing(with: 3, where: m)
                        best.store(y + o + k)
                        UnsafeMutableRawPointer(ao + k).storeBytes(of: SIMD8<UInt8>(truncatingIfNeeded: at),
                                                                       as: SIMD8<UInt8>.self)
                        k += 8
                    }
                    while k < c {
                        var best = x00[k], at: UInt8 = 0
                        if x01[k] > best { best = x01[k]; at = 1 }
                        if x10[k] > best { best = x10[k]; at = 2 }
                        if x11[k] > best { best = x11[k]; at = 3 }
                        y[o + k] = best
                        ao[k] = at
                        k += 1
                    }
                }
            }
        }
    }

    /// Each input belongs to exactly one window, so every element of the input
    /// gradient is written once: no zero-fill first. With `appliesReLU`, the
    /// gradient is first zeroed where the output is ≤ 0.
    public func backward(batch: Int, context: StepContext) {
        guard let dx = io.inputGrad else { return }
        precondition(keepsArgmax, "MaxPool2D: backward on a layer built without its argmax (an inference network)")
        let c = channels, w = width, oh = height / 2, ow = width / 2
        let dy = io.outputGrad, am = argmax, y = io.output, relu = appliesReLU
        parallelRanges(batch * oh, parts: parts) { rows, _ in
            for r in rows {
                let n = r / oh, i = r - n * oh
                for j in 0..<ow {
                    let d00 = dx + ((n * height + 2 * i) * w + 2 * j) * c
                    let d01 = d00 + c, d10 = d00 + w * c, d11 = d10 + c
                    let o = ((n * oh + i) * ow + j) * c
                    var k = 0
                    while k + 8 <= c {
                        var g = F8.load(dy + o + k)
                        if relu { g = g.reluMask(F8.load(y + o + k)) }
                        let at = F8(SIMD8<Int32>(truncatingIfNeeded:
                            UnsafeRawPointer(am + o + k).loadUnaligned(as: SIMD8<UInt8>.self)))
                        g.replacing(with: 0, where: at .!= 0).store(d00 + k)
                        g.replacing(with: 0, where: at .!= 1).store(d01 + k)
                        g.replacing(with: 0, where: at .!= 2).store(d10 + k)
                        g.replacing(with: 0, where: at .!= 3).store(d11 + k)
                        k += 8
                    }
                    while k < c {
                        let g = relu ? dy[o + k].reluMask(y[o + k]) : dy[o + k], at = am[o + k]
                        d00[k] = at == 0 ? g : 0
                        d01[k] = at == 1 ? g : 0
                        d10[k] = at == 2 ? g : 0
                        d11[k] = at == 3 ? g : 0
                        k += 1
                    }
                }
            }
        }
    }
}
