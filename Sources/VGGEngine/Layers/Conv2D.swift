import Foundation
import Vocabulary

/// 3×3 convolution, stride 1, SAME padding, bias, fused ReLU; NHWC tensors.
///
/// Two lowerings to sgemm (`ConvAlgorithm`), both working in chunks that fit
/// a fixed workspace (`ConvWorkspace`):
///
/// im2col (the reference), in chunks of output pixels:
///   col[P, 9C]    row p holds the 3×3×C patch around output pixel p
///   weights[9C, K] laid out [kh][kw][c][k] (TensorFlow's HWIO)
///   output[P, K]  = col · weights, then + bias, then ReLU
/// In NHWC every output pixel's patch is independent of the image it belongs
/// to, so a chunk may span images and the GEMM's M grows with the batch.
///
/// Winograd F(m×m, 3×3) with m = 2, 4 or 6 (`winograd2x2`, `winograd4x4`,
/// `winograd6x6`), in chunks of tiles: see `Winograd`. Every Winograd layer
/// uses the workspace's one transformed-filter buffer (α²·C·K floats, α =
/// m + 2), three times a step: U for forward, dU for the weight gradient,
/// then the rotated filter's U for backward-data.
///
/// Threads. With B > 1 BLAS threads, the layer runs OpenBLAS on one thread
/// and splits everything over B threads itself (`DispatchQueue.concurrentPerform`):
/// the loops outside BLAS (im2col, col2im, transforms, bias, ReLU) by rows,
/// tiles or channels, and the GEMMs by independent pieces (Winograd: the α²
/// points of a chunk; im2col: the chunk's rows, or dW's output channels).
/// With one thread nothing is dispatched.
public final class Conv2D: Layer {
    public let spec: LayerSpec
    public let parameterSlice: ArenaSlice
    /// What this layer runs (never `auto`).
    public let algorithm: ConvAlgorithm
    let inC: Int, outC: Int, height: Int, width: Int
    let io: LayerBuffers
    let p: LayerParameters
    let workspace: ConvWorkspace
    let col: UnsafeMutablePointer<Float>
    /// im2col: output pixels per chunk (rows of `col`).
    let chunkRows: Int
    /// Winograd: tiles per chunk, and the tiling.
    let chunkTiles: Int
    let grid: TileGrid?
    /// The max-pool after this layer applies ReLU's backward (it keeps the
    /// argmax and its own output), so backward takes `outputGrad` as the
    /// gradient after the ReLU and never reads `output`: in a training
    /// network that buffer is reused once the pool has run.
    let reluAppliedByPool: Bool
    public private(set) var gemmSeconds = 0.0

    public init(spec: LayerSpec, parameterSlice: ArenaSlice, io: LayerBuffers, parameters: LayerParameters,
                workspace: ConvWorkspace, algorithm: ConvAlgorithm, batch: Int, reluAppliedByPool: Bool = false) {
        guard case let .conv(_, c, k, h, w) = spec else { preconditionFailure("Conv2D needs a conv spec") }
        self.spec = spec
        self.reluAppliedByPool = reluAppliedByPool
        self.parameterSlice = parameterSlice
        inC = c; outC = k; height = h; width = w
        self.io = io; self.p = parameters
        self.workspace = workspace
        col = workspace.buffer
        let resolved = algorithm.resolved(inChannels: c, height: h, width: w)
        self.algorithm = resolved
        chunkRows = max(1, workspace.floats / (9 * c))
        if let m = resolved.tile {
            grid = TileGrid(height: h, width: w, m: m)
            chunkTiles = ConvWorkspace.chunkTiles(m: m, inChannels: c, outChannels: k, height: h, width: w,
                                                  batch: batch, floats: workspace.floats)
            precondition(workspace.filterFloats >= (m + 2) * (m + 2) * c * k, "workspace too small for \(resolved)")
        } else {
            grid = nil
            chunkTiles = 0
        }
    }

    /// Rows of `col` this layer wants for a batch, capped by the budget.
    public static func workspaceFloats(spec: LayerSpec, batch: Int, budget: Int) -> Int {
        guard case let .conv(_, c, _, h, w) = spec else { return 0 }
        let rows = min(batch * h * w, max(1, budget / (9 * c)))
        return rows * 9 * c
    }

    /// Runs `body` with OpenBLAS on one thread and the layer's own parts set
    /// to the BLAS thread count (see the type's comment), then restores the
    /// thread count. Why not threaded sgemm: OpenBLAS's idle workers spin
    /// (sched_yield) for a while after each threaded call, so between the α²
    /// threaded GEMMs of a Winograd chunk they would compete with the
    /// transform threads for the same cores.
    @inline(__always)
    func withThreads(_ body: () -> Void) {
        BLAS.singleThreaded(parts: workspace.updateParts(), body)
    }

    public func forward(batch: Int, context: StepContext) {
        withThreads { forwardAlgorithm(batch: batch) }
    }

    public func backward(batch: Int, context: StepContext) {
        withThreads { backwardAlgorithm(batch: batch) }
    }

    func forwardAlgorithm(batch: Int) {
        switch algorithm {
        case .winograd2: forwardWinograd(WinogradF2.self, batch: batch)
        case .winograd4: forwardWinograd(WinogradF4.self, batch: batch)
        case .winograd6: forwardWinograd(WinogradF6.self, batch: batch)
        case .im2col, .auto: forwardIm2col(batch: batch)
        }
    }

    func backwardAlgorithm(batch: Int) {
        switch algorithm {
        case .winograd2: backwardWinograd(WinogradF2.self, batch: batch)
        case .winograd4: backwardWinograd(WinogradF4.self, batch: batch)
        case .winograd6: backwardWinograd(WinogradF6.self, batch: batch)
        case .im2col, .auto: backwardIm2col(batch: batch)
        }
    }

    // MARK: - Winograd

    func forwardWinograd<T: WinogradTransform>(_ kind: T.Type, batch: Int) {
        guard let grid else { return }
        Winograd.transformFilter(kind, weights: p.weights, c: inC, k: outC, flip: false,
                                 into: workspace.filter, workspace: workspace)
        gemmSeconds = Winograd.convolve(kind, input: io.input, inChannels: inC, output: io.output, outChannels: outC,
                                        grid: grid, batch: batch, chunkTiles: chunkTiles,
                                        filter: workspace.filter, transposed: false, bias: p.bias,
                                        workspace: workspace)
    }

    func backwardWinograd<T: WinogradTransform>(_ kind: T.Type, batch: Int) {
        guard let grid else { return }
        // Weights and bias; applies ReLU's backward to dy in place.
        gemmSeconds = Winograd.weightGradient(kind, input: io.input, inChannels: inC, outputGrad: io.outputGrad,
                                              output: reluAppliedByPool ? nil : io.output, outChannels: outC, grid: grid, batch: batch,
                                              chunkTiles: chunkTiles, weightGrad: p.weightGrad, biasGrad: p.biasGrad,
                                              workspace: workspace)
        guard let dx = io.inputGrad else { return }
        // dx = conv(dy, W rotated 180°, C and K swapped): every element written once.
        Winograd.transformFilter(kind, weights: p.weights, c: inC, k: outC, flip: true,
                                 into: workspace.filter, workspace: workspace)
        gemmSeconds += Winograd.convolve(kind, input: io.outputGrad, inChannels: outC, output: dx, outChannels: inC,
                                         grid: grid, batch: batch, chunkTiles: chunkTiles,
                                         filter: workspace.filter, transposed: true, bias: nil,
                                         workspace: workspace)
    }

    // MARK: - im2col

    func forwardIm2col(batch: Int) {
        let rows = batch * height * width
        let kdim = 9 * inC
        let parts = workspace.parts
        var first = 0
        gemmSeconds = 0
        while first < rows {
            let count = min(chunkRows, rows - first)
            parallelRanges(count, parts: parts) { r, _ in
                im2col(firstRow: first + r.lowerBound, rows: r.count, into: col + r.lowerBound * kdim)
            }
            let y = io.output + first * outC
            let g0 = Clock.now()
            parallelRanges(count, parts: parts) { r, _ in
                // y[rows, K] = col[rows, 9C] · W[9C, K]
                BLAS.sgemm(m: r.count, n: outC, k: kdim, a: col + r.lowerBound * kdim, lda: kdim, b: p.weights,
                           ldb: outC, beta: 0, c: y + r.lowerBound * outC, ldc: outC)
            }
            gemmSeconds += Clock.now() - g0
            parallelRanges(count, parts: parts) { r, _ in
                addBiasReLURows(y, rows: r, k: outC, bias: p.bias)
            }
            first += count
        }
    }

    func backwardIm2col(batch: Int) {
        let rows = batch * height * width
        let kdim = 9 * inC
        let dy = io.outputGrad
        let parts = workspace.parts
        // ReLU's gradient and the bias gradient, in one pass over dy.
        reluBackwardAndBiasGrad(dy, rows: rows)
        if let dx = io.inputGrad {
            let n = rows * inC
            parallelRanges(n, parts: parts) { r, _ in (dx + r.lowerBound).update(repeating: 0, count: r.count) }
        }
        var first = 0
        gemmSeconds = 0
        while first < rows {
            let count = min(chunkRows, rows - first)
            let dyc = dy + first * outC
            parallelRanges(count, parts: parts) { r, _ in
                im2col(firstRow: first + r.lowerBound, rows: r.count, into: col + r.lowerBound * kdim)
            }
            let g0 = Clock.now()
            // Split by output channels, in blocks of 16: no reduction across threads.
            parallelRanges((outC + 15) / 16, parts: parts) { r, _ in
                let k0 = r.lowerBound * 16, kn = min(r.upperBound * 16, outC) - k0
                // dW[9C, k0..] (+)= col^T[9C, count] · dy[count, k0..]
                BLAS.sgemm(transA: true, m: kdim, n: kn, k: count, a: col, lda: kdim, b: dyc + k0, ldb: outC,
                           beta: first == 0 ? 0 : 1, c: p.weightGrad + k0, ldc: outC)
            }
            if io.inputGrad != nil {
                parallelRanges(count, parts: parts) { r, _ in
                    // dcol[rows, 9C] = dy[rows, K] · W^T[K, 9C]   (reuses col)
                    BLAS.sgemm(transB: true, m: r.count, n: kdim, k: outC, a: dyc + r.lowerBound * outC, lda: outC,
                               b: p.weights, ldb: outC, beta: 0, c: col + r.lowerBound * kdim, ldc: kdim)
                }
                gemmSeconds += Clock.now() - g0
                // Channel ranges: neighbouring rows add into the same pixels.
                parallelRanges(inC, parts: inC >= 16 ? parts : 1) { r, _ in
                    col2im(firstRow: first, rows: count, channels: r)
                }
            } else {
                gemmSeconds += Clock.now() - g0
            }
            first += count
        }
    }

    // MARK: - Outside BLAS

    /// col[r, (kh·3+kw)·C + c] = input[pixel(r) + (kh-1, kw-1), c], zero outside the image.
    func im2col(firstRow: Int, rows: Int, into col: UnsafeMutablePointer<Float>) {
        let c = inC, h = height, w = width, rowLen = 9 * c
        let x = io.input
        var n = firstRow / (h * w)
        var yy = (firstRow / w) % h
        var xx = firstRow % w
        for r in 0..<rows {
            let dst = col + r * rowLen
            let image = x + n * h * w * c
            for kh in 0..<3 {
                let iy = yy + kh - 1
                let d = dst + kh * 3 * c
                if iy < 0 || iy >= h {
                    d.update(repeating: 0, count: 3 * c)
                    continue
                }
                let src = image + (iy * w) * c
                if c < 16 {
                    // Few channels (the RGB layer): plain loops beat a copy call per tap.
                    for kw in 0..<3 {
                        let ix = xx + kw - 1
                        let dk = d + kw * c
                        if ix < 0 || ix >= w {
                            for j in 0..<c { dk[j] = 0 }
                        } else {
                            let sk = src + ix * c
                            for j in 0..<c { dk[j] = sk[j] }
                        }
                    }
                } else if xx >= 1 && xx + 1 < w {
                    // The three taps of this kernel row are contiguous in both.
                    d.update(from: src + (xx - 1) * c, count: 3 * c)
                } else {
                    for kw in 0..<3 {
                        let ix = xx + kw - 1
                        if ix < 0 || ix >= w {
                            (d + kw * c).update(repeating: 0, count: c)
                        } else {
                            (d + kw * c).update(from: src + ix * c, count: c)
                        }
                    }
                }
            }
            xx += 1
            if xx == w { xx = 0; yy += 1; if yy == h { yy = 0; n += 1 } }
        }
    }

    /// The adjoint of im2col: input grad[pixel(r) + (kh-1, kw-1), c] += dcol[r, ...].
    func col2im(firstRow: Int, rows: Int, channels: Range<Int>) {
        guard let dx = io.inputGrad else { return }
        let c = inC, h = height, w = width, rowLen = 9 * c
        let c0 = channels.lowerBound, nc = channels.count, whole = nc == c
        var n = firstRow / (h * w)
        var yy = (firstRow / w) % h
        var xx = firstRow % w
        for r in 0..<rows {
            let src = col + r * rowLen
            let image = dx + n * h * w * c
            for kh in 0..<3 {
                let iy = yy + kh - 1
                if iy < 0 || iy >= h { continue }
                let s = src + kh * 3 * c + c0
                let row = image + (iy * w) * c + c0
                let lo = xx == 0 ? 1 : 0
                let hi = xx + 1 == w ? 2 : 3
                if lo == 0 && hi == 3 && whole {
                    addInPlace(row + (xx - 1) * c, s, count: 3 * c)
                } else {
                    for kw in lo..<hi {
                        addInPlace(row + (xx + kw - 1) * c, s + kw * c, count: nc)
                    }
                }
            }
            xx += 1
            if xx == w { xx = 0; yy += 1; if yy == h { yy = 0; n += 1 } }
        }
    }

    /// ReLU's backward on dy in place (unless the pool after this layer
    /// applied it), and the bias gradient, in one pass; rows split over
    /// threads, each summing into its own slot.
    func reluBackwardAndBiasGrad(_ dy: UnsafeMutablePointer<Float>, rows: Int) {
        let k = outC, y = io.output, db = p.biasGrad
        let parts = min(workspace.parts, rows)
        for slot in 0..<max(parts, 1) { workspace.slots[slot].sums.update(repeating: 0, count: k) }
        parallelRanges(rows, parts: parts) { r, slot in
            if reluAppliedByPool {
                sumRows(dy, rows: r, k: k, sum: workspace.slots[slot].sums)
            } else {
                reluBackwardRows(dy, y, rows: r, k: k, sum: workspace.slots[slot].sums)
            }
        }
        db.update(from: workspace.slots[0].sums, count: k)
        for slot in 1..<max(parts, 1) { addInPlace(db, workspace.slots[slot].sums, count: k) }
    }
}
