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

    /// Q = Mᵀ·P.
    public static func projectBack(m: UnsafePointer<Float>, rows: Int, cols: Int, p: UnsafePointer<Float>, rank: Int,
                                   into q: UnsafeMutablePointer<Float>) {
        // [cols×rows]·[rows×rank] → [cols×rank]
        BLAS.sgemm(transA: true, m: cols, n: rank, k: rows, a: m, lda: cols, b: p, ldb: rank, beta: 0, c: q, ldc: rank)
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

    /// The decompression and the error feedback in one pass over M, a block
    /// of rows at a time through `tile` (`blockRows`·cols floats): M̂ = P·Qᵀ,
    /// memory = M − scale·M̂, then M is overwritten with M̂.
    public static func decompress(p: UnsafePointer<Float>, q: UnsafePointer<Float>, rows: Int, cols: Int, rank: Int,
                                  scale: Float, m: UnsafeMutablePointer<Float>, memory: UnsafeMutablePointer<Float>,
                                  tile: UnsafeMutablePointer<Float>, blockRows: Int) {
        var r0 = 0
        while r0 < rows {
            let n = min(blockRows, rows - r0)
            expand(p: p + r0 * rank, q: q, rows: n, cols: cols, rank: rank, beta: 0, into: tile)
            let mm = m + r0 * cols, e = memory + r0 * cols
            for i in 0..<(n * cols) {
                let v = tile[i]
                e[i] = mm[i] - scale * v
                mm[i] = v
            }
            r0 += n
        }
    }

    /// a[i] += b[i].
    public static func add(_ b: UnsafePointer<Float>, into a: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { a[i] += b[i] }
    }
}
