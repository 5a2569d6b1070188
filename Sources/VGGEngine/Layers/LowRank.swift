/// The low-rank kernels behind PowerSGD gradient compression, on row-major
/// matrices: M is rows×cols (a 3×3 convolution's weight gradient as
/// (9·C)×K, a linear layer's as in×out, both exactly as the gradient arena
/// holds them), P is rows×rank and Q is cols×rank.
public enum LowRank {
    /// P = M·Q.
    public static func project(m: UnsafePointer<Float>, rows: Int, cols: Int, q: UnsafePointer<Float>, rank: Int,
                               into p: UnsafeMutablePointer<Float>) {
        // [rows×cols]·[cols×rank] → [rows×rank]
        BLAS.sgemm(m: rows, n: rank, k: cols, a: m, lda: cols, b: q, ldb: rank, beta: 0, c: p, ldc: rank)
    }

    /// Q = Mᵀ·P, accumulated in `scratch` as Qᵀ (rank×cols), four rows of M
    /// at a time, then written to `q` (cols×rank). Not sgemm: with n = rank
    /// (4) OpenBLAS packs all of M and runs well under memory speed; here
    /// each row of M is read once and Qᵀ stays in cache. The sums run over
    /// the rows in order: the same input gives the same bits on every rank.
    public static func projectBack(m: UnsafePointer<Float>, rows: Int, cols: Int, p: UnsafePointer<Float>, rank: Int,
                                   into q: UnsafeMutablePointer<Float>, scratch qT: UnsafeMutablePointer<Float>) {
        qT.update(repeating: 0, count: rank * cols)
        let body = cols - cols % 8
        var r = 0
        while r < rows {
            let n = min(4, rows - r)
            let m0 = m + r * cols, pr = p + r * rank
            if n == 4 {
                var c = 0
                while c < body {
                    let x0 = F8.load(m0 + c), x1 = F8.load(m0 + cols + c), x2 = F8.load(m0 + 2 * cols + c), x3 = F8.load(m0 + 3 * cols + c)
                    for j in 0..<rank {
                        let a = qT + j * cols + c
                        (F8.load(a) + pr[j] * x0 + pr[rank + j] * x1 + pr[2 * rank + j] * x2 + pr[3 * rank + j] * x3).store(a)
                    }
                    c += 8
                }
                for c in body..<cols {
                    for j in 0..<rank {
                        qT[j * cols + c] += pr[j] * m0[c] + pr[rank + j] * m0[cols + c] + pr[2 * rank + j] * m0[2 * cols + c]
                            + pr[3 * rank + j] * m0[3 * cols + c]
                    }
                }
            } else {
                for i in 0..<n {
                    for j in 0..<rank {
                        let a = qT + j * cols, w = pr[i * rank + j], x = m0 + i * cols
                        var c = 0
                        while c < body { (F8.load(a + c) + w * F8.load(x + c)).store(a + c); c += 8 }
                        for c in body..<cols { a[c] += w * x[c] }
                    }
                }
            }
            r += n
        }
        transpose(qT, rows: rank, cols: cols, into: q)
    }

    /// out (cols×rows) = a (rows×cols) transposed.
    public static func transpose(_ a: UnsafePointer<Float>, rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>) {
        for i in 0..<rows {
            for j in 0..<cols { out[j * rows + i] = a[i * cols + j] }
        }
    }

    /// C = α·P·Qᵀ + β·C (β 0: C is overwritten).
    public static func expand(p: UnsafePointer<Float>, q: UnsafePointer<Float>, rows: Int, cols: Int, rank: Int,
                              alpha: Float = 1, beta: Float, into c: UnsafeMutablePointer<Float>) {
        // [rows×rank]·[rank×cols] → [rows×cols]
        BLAS.sgemm(transB: true, m: rows, n: cols, k: rank, alpha: alpha, a: p, lda: rank, b: q, ldb: rank,
                   beta: beta, c: c, ldc: cols)
    }

    /// Makes the columns of the rows×rank matrix P orthonormal, in place, by
    /// modified Gram-Schmidt, column by column in a fixed order: the same
    /// input gives the same bits on every rank. A column that is (nearly)
    /// zero after removing the earlier ones is divided by its norm plus a
    /// small ε (as PyTorch's PowerSGD hook does) instead of by zero.
    public static func orthonormalize(_ p: UnsafeMutablePointer<Float>, rows: Int, rank: Int) {
        let epsilon = 1e-8
        for i in 0..<rank {
            for j in 0..<i {
                var dot = 0.0
                for r in 0..<rows { dot += Double(p[r * rank + i]) * Double(p[r * rank + j]) }
                let d = Float(dot)
                for r in 0..<rows { p[r * rank + i] -= d * p[r * rank + j] }
            }
            var norm = 0.0
            for r in 0..<rows { let v = Double(p[r * rank + i]); norm += v * v }
            let inverse = Float(1 / (norm.squareRoot() + epsilon))
            for r in 0..<rows { p[r * rank + i] *= inverse }
        }
    }

    /// M += memory, then P = M·Q, a block of rows at a time, so that each
    /// block's product reads M while it is still in cache (`blockRows` rows).
    public static func addAndProject(memory: UnsafePointer<Float>, into m: UnsafeMutablePointer<Float>, rows: Int, cols: Int,
                                     q: UnsafePointer<Float>, rank: Int, p: UnsafeMutablePointer<Float>, blockRows: Int) {
        var r0 = 0
        while r0 < rows {
            let n = min(blockRows, rows - r0)
            add(memory + r0 * cols, into: m + r0 * cols, count: n * cols)
            // [n×cols]·[cols×rank] → [n×rank]
            BLAS.sgemm(m: n, n: rank, k: cols, a: m + r0 * cols, lda: cols, b: q, ldb: rank, beta: 0,
                       c: p + r0 * rank, ldc: rank)
            r0 += n
        }
    }

    /// The decompression and the error feedback in one pass over M, four
    /// rows at a time with Qᵀ (rank×cols) in `scratch`: M̂ = P·Qᵀ,
    /// memory = M − scale·M̂, then M is overwritten with M̂. Not sgemm with
    /// k = rank into a tile: written directly, each element of M is read
    /// once and each Qᵀ vector serves four rows.
    public static func decompress(p: UnsafePointer<Float>, q: UnsafePointer<Float>, rows: Int, cols: Int, rank: Int,
                                  scale: Float, m: UnsafeMutablePointer<Float>, memory: UnsafeMutablePointer<Float>,
                                  scratch qT: UnsafeMutablePointer<Float>) {
        transpose(q, rows: cols, cols: rank, into: qT)
        let body = cols - cols % 8
        let s = F8(repeating: scale)
        @inline(__always) func finish(_ v: F8, _ at: Int) {
            (F8.load(m + at) - s * v).store(memory + at)
            v.store(m + at)
        }
        @inline(__always) func finishTail(_ v: Float, _ at: Int) {
            memory[at] = m[at] - scale * v
            m[at] = v
        }
        var r = 0
        while r < rows {
            let n = min(4, rows - r)
            let base = r * cols, pr = p + r * rank
            if n == 4 {
                var c = 0
                while c < body {
                    var v0 = F8(repeating: 0), v1 = v0, v2 = v0, v3 = v0
                    for j in 0..<rank {
                        let x = F8.load(qT + j * cols + c)
                        v0 = v0 + pr[j] * x
                        v1 = v1 + pr[rank + j] * x
                        v2 = v2 + pr[2 * rank + j] * x
                        v3 = v3 + pr[3 * rank + j] * x
                    }
                    finish(v0, base + c); finish(v1, base + cols + c); finish(v2, base + 2 * cols + c); finish(v3, base + 3 * cols + c)
                    c += 8
                }
                for c in body..<cols {
                    for i in 0..<4 {
                        var v: Float = 0
                        for j in 0..<rank { v += pr[i * rank + j] * qT[j * cols + c] }
                        finishTail(v, base + i * cols + c)
                    }
                }
            } else {
                for i in 0..<n {
                    let row = base + i * cols
                    var c = 0
                    while c < body {
                        var v = F8(repeating: 0)
                        for j in 0..<rank { v = v + pr[i * rank + j] * F8.load(qT + j * cols + c) }
                        finish(v, row + c)
                        c += 8
                    }
                    for c in body..<cols {
                        var v: Float = 0
                        for j in 0..<rank { v += pr[i * rank + j] * qT[j * cols + c] }
                        finishTail(v, row + c)
                    }
                }
            }
            r += n
        }
    }

    /// a[i] += b[i].
    public static func add(_ b: UnsafePointer<Float>, into a: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { a[i] += b[i] }
    }
}
