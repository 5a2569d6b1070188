import Vocabulary

/// Fully connected layer on sgemm, optional fused ReLU.
///   x[N, I] · W[I, O] + b → y[N, O]      (W laid out [in][out], as TensorFlow)
public final class Linear: Layer {
    public let spec: LayerSpec
    public let parameterSlice: ArenaSlice
    let inF: Int, outF: Int, relu: Bool
    let io: LayerBuffers
    let p: LayerParameters
    public private(set) var gemmSeconds = 0.0

    public init(spec: LayerSpec, parameterSlice: ArenaSlice, io: LayerBuffers, parameters: LayerParameters) {
        guard case let .linear(_, i, o, r) = spec else { preconditionFailure("Linear needs a linear spec") }
        self.spec = spec
        self.parameterSlice = parameterSlice
        inF = i; outF = o; relu = r
        self.io = io; self.p = parameters
    }

    /// With more than one BLAS thread, each GEMM is split by output columns
    /// over the threads, each running a single-threaded sgemm (see
    /// `BLAS.singleThreaded`); blocks of 16 columns keep every part's
    /// columns 64-byte aligned.
    public func forward(batch: Int, context: StepContext) {
        let y = io.output, x = io.input, w = p.weights, bias = p.bias
        let parts = BLAS.parts, blocks = (outF + 15) / 16
        BLAS.singleThreaded(parts: parts) {
            let g0 = Clock.now()
            parallelRanges(blocks, parts: parts) { r, _ in
                let c0 = r.lowerBound * 16, cols = min(r.upperBound * 16, outF) - c0
                // y[N, cols] = x[N, I] · W[I, c0 ..< c0 + cols]
                BLAS.sgemm(m: batch, n: cols, k: inF, a: x, lda: inF, b: w + c0, ldb: outF,
                           beta: 0, c: y + c0, ldc: outF)
            }
            gemmSeconds = Clock.now() - g0
            parallelRanges(batch, parts: parts) { rows, _ in
                if relu {
                    addBiasReLURows(y, rows: rows, k: outF, bias: bias)
                } else {
                    for r in rows { addInPlace(y + r * outF, bias, count: outF) }
                }
            }
        }
    }

    public func backward(batch: Int, context: StepContext) {
        let dy = io.outputGrad, db = p.biasGrad, x = io.input, out = io.output
        let parts = BLAS.parts, blocks = (outF + 15) / 16
        BLAS.singleThreaded(parts: parts) {
            // ReLU's backward and the bias gradient, by columns (no reduction across threads).
            parallelRanges(blocks, parts: parts) { r, _ in
                let c0 = r.lowerBound * 16, c1 = min(r.upperBound * 16, outF)
                (db + c0).update(repeating: 0, count: c1 - c0)
                for row in 0..<batch {
                    let g = dy + row * outF, o = out + row * outF
                    for j in c0..<c1 {
                        if relu && o[j] <= 0 { g[j] = 0 }
                        db[j] += g[j]
                    }
                }
            }
            let g0 = Clock.now()
            parallelRanges(blocks, parts: parts) { r, _ in
                let c0 = r.lowerBound * 16, cols = min(r.upperBound * 16, outF) - c0
                // dW[I, cols] = x^T[I, N] · dy[N, cols]
                BLAS.sgemm(transA: true, m: inF, n: cols, k: batch, a: x, lda: inF, b: dy + c0, ldb: outF,
                           beta: 0, c: p.weightGrad + c0, ldc: outF)
            }
            if let dx = io.inputGrad {
                let inBlocks = (inF + 15) / 16
                parallelRanges(inBlocks, parts: parts) { r, _ in
                    let i0 = r.lowerBound * 16, cols = min(r.upperBound * 16, inF) - i0
                    // dx[N, cols] = dy[N, O] · W[i0 ..< i0 + cols, O]^T
                    BLAS.sgemm(transB: true, m: batch, n: cols, k: outF, a: dy, lda: outF,
                               b: p.weights + i0 * outF, ldb: outF, beta: 0, c: dx + i0, ldc: inF)
                }
            }
            gemmSeconds = Clock.now() - g0
        }
    }
}
