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

    public func forward(batch: Int, context: StepContext) {
        let y = io.output
        let g0 = Clock.now()
        // y[N, O] = x[N, I] · W[I, O]
        BLAS.sgemm(m: batch, n: outF, k: inF, a: io.input, lda: inF, b: p.weights, ldb: outF,
                   beta: 0, c: y, ldc: outF)
        gemmSeconds = Clock.now() - g0
        for r in 0..<batch {
            let row = y + r * outF
            if relu {
                for j in 0..<outF { row[j] = max(row[j] + p.bias[j], 0) }
            } else {
                for j in 0..<outF { row[j] += p.bias[j] }
            }
        }
    }

    public func backward(batch: Int, context: StepContext) {
        let dy = io.outputGrad, db = p.biasGrad
        db.update(repeating: 0, count: outF)
        for r in 0..<batch {
            let g = dy + r * outF, out = io.output + r * outF
            for j in 0..<outF {
                if relu && out[j] <= 0 { g[j] = 0 }
                db[j] += g[j]
            }
        }
        let g0 = Clock.now()
        // dW[I, O] = x^T[I, N] · dy[N, O]
        BLAS.sgemm(transA: true, m: inF, n: outF, k: batch, a: io.input, lda: inF, b: dy, ldb: outF,
                   beta: 0, c: p.weightGrad, ldc: outF)
        if let dx = io.inputGrad {
            // dx[N, I] = dy[N, O] · W^T[O, I]
            BLAS.sgemm(transB: true, m: batch, n: inF, k: outF, a: dy, lda: outF, b: p.weights, ldb: outF,
                       beta: 0, c: dx, ldc: inF)
        }
        gemmSeconds = Clock.now() - g0
    }
}
