import COpenBLAS
import Vocabulary

/// The layer kernels' door to OpenBLAS. Row-major throughout:
/// C[m×n] = α·op(A)·op(B) + β·C, op(A) is m×k and op(B) is k×n. The thread
/// count, kernel name and peak probe are the runtime's (`Runtime/BLASRuntime.swift`).
extension BLAS {
    @inline(__always)
    static func sgemm(transA: Bool = false, transB: Bool = false,
                      m: Int, n: Int, k: Int,
                      alpha: Float = 1,
                      a: UnsafePointer<Float>, lda: Int,
                      b: UnsafePointer<Float>, ldb: Int,
                      beta: Float,
                      c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y[n] = α·A^T·x + β·y with A m×n row-major (transA), or y[m] = α·A·x + β·y.
    @inline(__always)
    static func sgemv(transA: Bool, m: Int, n: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                      x: UnsafePointer<Float>, beta: Float, y: UnsafeMutablePointer<Float>) {
        cblas_sgemv(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), alpha,
                    a, Int32(lda), x, 1, beta, y, 1)
    }

    /// Runs `body` with OpenBLAS on one thread when `parts` > 1 (the caller
    /// then splits its GEMMs over `parts` threads itself), and restores the
    /// thread count after. OpenBLAS's idle workers spin on sched_yield for a
    /// while after every threaded call (OpenBLAS's thread timeout); an engine
    /// whose threads never hand OpenBLAS a threaded call keeps the cores for
    /// its own loops.
    @inline(__always)
    static func singleThreaded(parts: Int, _ body: () -> Void) {
        if parts > 1 { setThreads(1) }
        body()
        if parts > 1 { setThreads(parts) }
    }

    /// Parallel parts for the engine's own loops: the BLAS thread count.
    static var parts: Int { max(1, threads) }
}
