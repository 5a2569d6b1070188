import COpenBLAS
import Vocabulary

/// OpenBLAS as this process holds it: its thread count, the kernel it runs,
/// its build, and the sgemm peak probe. `BLASKernel` decides which kernel
/// that is.
///
/// This folder (`Runtime`) is the BLAS runtime, the only code outside the
/// layer kernels that calls OpenBLAS. The kernels' own calls (sgemm, sgemv,
/// and running them single-threaded) are in `Layers/BLAS.swift`; the probe
/// and `BLASKernel`'s check call the same `BLAS.sgemm`.
public enum BLAS {
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
