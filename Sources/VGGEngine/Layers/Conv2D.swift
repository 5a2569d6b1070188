/// 3×3 convolution, stride 1, SAME padding, bias, fused ReLU; NHWC tensors.
///
/// Lowered to sgemm through im2col, in chunks of output pixels so that the
/// column buffer stays within a fixed workspace:
///   col[P, 9C]    row p holds the 3×3×C patch around output pixel p
///   weights[9C, K] laid out [kh][kw][c][k] (TensorFlow's HWIO)
///   output[P, K]  = col · weights, then + bias, then ReLU
/// In NHWC every output pixel's patch is independent of the image it belongs
/// to, so a chunk may span images and the GEMM's M grows with the batch.
public final class Conv2D: Layer {
    public let spec: LayerSpec
    public let parameterSlice: ArenaSlice
    let inC: Int, outC: Int, height: Int, width: Int
    let io: LayerBuffers
    let p: LayerParameters
    let col: UnsafeMutablePointer<Float>
    /// Output pixels per chunk: rows of `col`.
    let chunkRows: Int
    public private(set) var gemmSeconds = 0.0

    public init(spec: LayerSpec, parameterSlice: ArenaSlice, io: LayerBuffers, parameters: LayerParameters,
                workspace: UnsafeMutablePointer<Float>, workspaceFloats: Int) {
        guard case let .conv(_, c, k, h, w) = spec else { preconditionFailure("Conv2D needs a conv spec") }
        self.spec = spec
        self.parameterSlice = parameterSlice
        inC = c; outC = k; height = h; width = w
        self.io = io; self.p = parameters
        col = workspace
        chunkRows = max(1, workspaceFloats / (9 * c))
    }

    /// Rows of `col` this layer wants for a batch, capped by the budget.
    public static func workspaceFloats(spec: LayerSpec, batch: Int, budget: Int) -> Int {
        guard case let .conv(_, c, _, h, w) = spec else { return 0 }
        let rows = min(batch * h * w, max(1, budget / (9 * c)))
        return rows * 9 * c
    }

    public func forward(batch: Int, context: StepContext) {
        let rows = batch * height * width
        let kdim = 9 * inC
        var first = 0
        gemmSeconds = 0
        while first < rows {
            let count = min(chunkRows, rows - first)
            im2col(firstRow: first, rows: count)
            let y = io.output + first * outC
            let g0 = Clock.now()
            // y[count, K] = col[count, 9C] · W[9C, K]
            BLAS.sgemm(m: count, n: outC, k: kdim, a: col, lda: kdim, b: p.weights, ldb: outC,
                       beta: 0, c: y, ldc: outC)
            gemmSeconds += Clock.now() - g0
            addBiasReLU(y, rows: count)
            first += count
        }
    }

    public func backward(batch: Int, context: StepContext) {
        let rows = batch * height * width
        let kdim = 9 * inC
        let dy = io.outputGrad
        // ReLU's gradient and the bias gradient, in one pass over dy.
        reluBackwardAndBiasGrad(dy, rows: rows)
        if let dx = io.inputGrad { dx.update(repeating: 0, count: rows * inC) }
        var first = 0
        gemmSeconds = 0
        while first < rows {
            let count = min(chunkRows, rows - first)
            let dyc = dy + first * outC
            im2col(firstRow: first, rows: count)
            let g0 = Clock.now()
            // dW[9C, K] (+)= col^T[9C, count] · dy[count, K]
            BLAS.sgemm(transA: true, m: kdim, n: outC, k: count, a: col, lda: kdim, b: dyc, ldb: outC,
                       beta: first == 0 ? 0 : 1, c: p.weightGrad, ldc: outC)
            if io.inputGrad != nil {
                // dcol[count, 9C] = dy[count, K] · W^T[K, 9C]   (reuses col)
                BLAS.sgemm(transB: true, m: count, n: kdim, k: outC, a: dyc, lda: outC, b: p.weights, ldb: outC,
                           beta: 0, c: col, ldc: kdim)
                gemmSeconds += Clock.now() - g0
                col2im(firstRow: first, rows: count)
            } else {
                gemmSeconds += Clock.now() - g0
            }
            first += count
        }
    }

    // MARK: - Outside BLAS

    /// col[r, (kh·3+kw)·C + c] = input[pixel(r) + (kh-1, kw-1), c], zero outside the image.
    func im2col(firstRow: Int, rows: Int) {
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
    func col2im(firstRow: Int, rows: Int) {
        guard let dx = io.inputGrad else { return }
        let c = inC, h = height, w = width, rowLen = 9 * c
        var n = firstRow / (h * w)
        var yy = (firstRow / w) % h
        var xx = firstRow % w
        for r in 0..<rows {
            let src = col + r * rowLen
            let image = dx + n * h * w * c
            for kh in 0..<3 {
                let iy = yy + kh - 1
                if iy < 0 || iy >= h { continue }
                let s = src + kh * 3 * c
                let row = image + (iy * w) * c
                let lo = xx == 0 ? 1 : 0
                let hi = xx + 1 == w ? 2 : 3
                if lo == 0 && hi == 3 {
                    addInPlace(row + (xx - 1) * c, s, count: 3 * c)
                } else {
                    for kw in lo..<hi {
                        addInPlace(row + (xx + kw - 1) * c, s + kw * c, count: c)
                    }
                }
            }
            xx += 1
            if xx == w { xx = 0; yy += 1; if yy == h { yy = 0; n += 1 } }
        }
    }

    func addBiasReLU(_ y: UnsafeMutablePointer<Float>, rows: Int) {
        let k = outC, b = p.bias
        for r in 0..<rows {
            let row = y + r * k
            for j in 0..<k { row[j] = max(row[j] + b[j], 0) }
        }
    }

    func reluBackwardAndBiasGrad(_ dy: UnsafeMutablePointer<Float>, rows: Int) {
        let k = outC, y = io.output, db = p.biasGrad
        db.update(repeating: 0, count: k)
        for r in 0..<rows {
            let g = dy + r * k, out = y + r * k
            for j in 0..<k {
                let v = out[j] > 0 ? g[j] : 0
                g[j] = v
                db[j] += v
            }
        }
    }
}

@inline(__always)
func addInPlace(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int) {
    for i in 0..<count { dst[i] += src[i] }
}
