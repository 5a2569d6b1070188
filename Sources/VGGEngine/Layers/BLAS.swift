import COpenBLAS
import Vocabulary

/// The one door to OpenBLAS. Row-major throughout: C[m×n] = α·op(A)·op(B) + β·C,
/// op(A) is m×k and op(B) is k×n.
public enum BLAS {
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

    /// Threads OpenBLAS uses for each call from now on.
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// The kernel OpenBLAS picked for this CPU (e.g. "Haswell", "SkylakeX").
    public static var coreName: String { String(cString: openblas_get_corename()) }
    public static var config: String { String(cString: openblas_get_config()) }

    /// Times `repeats` square sgemm calls of size n and returns GFLOP/s: the
    /// machine's practical limit for the kernels this engine runs.
    public static func peakGFLOPS(n: Int = 1024, repeats: Int = 5) -> (gflops: Double, seconds: [Double]) {
        let a = FloatArena(count: n * n), b = FloatArena(count: n * n), c = FloatArena(count: n * n)
        for i in 0..<(n * n) {
            a[i] = CounterRandom.symmetric(11, i)
            b[i] = CounterRandom.symmetric(12, i)
        }
        // One untimed call brings up the BLAS threads and touches the pages.
        sgemm(m: n, n: n, k: n, a: a.base, lda: n, b: b.base, ldb: n, beta: 0, c: c.base, ldc: n)
        var times: [Double] = []
        for _ in 0..<repeats {
            let t0 = Clock.now()
            sgemm(m: n, n: n, k: n, a: a.base, lda: n, b: b.base, ldb: n, beta: 0, c: c.base, ldc: n)
            times.append(Clock.now() - t0)
        }
        let best = times.min() ?? 1
        return (2.0 * Double(n) * Double(n) * Double(n) / best / 1e9, times)
    }
}

extension BLAS {
    /// Runs `body` with OpenBLAS on one thread when `parts` > 1 (the caller
    /// then splits its GEMMs over `parts` threads itself), and restores the
    /// thread count after. OpenBLAS's idle workers spin on sched_yield for
    /// ~0.1 s after every threaded call; an engine whose threads never hand
    /// OpenBLAS a threaded call keeps both cores for its own loops.
    @inline(__always)
    static func singleThreaded(parts: Int, _ body: () -> Void) {
        if parts > 1 { setThreads(1) }
        body()
        if parts > 1 { setThreads(parts) }
    }

    /// Parallel parts for the engine's own loops: the BLAS thread count.
    static var parts: Int { max(1, threads) }
}
