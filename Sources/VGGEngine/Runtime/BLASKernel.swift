import Foundation

/// Which OpenBLAS kernel runs, and what to do when OpenBLAS does not know the
/// CPU.
///
/// OpenBLAS (a DYNAMIC_ARCH build, as Debian ships it) picks its kernel once,
/// when the library loads: `OPENBLAS_CORETYPE` if set, else from CPUID. Debian
/// 12's OpenBLAS 0.3.21 does not know recent Xeons (family 6, model 207 here)
/// and falls back to Prescott, an SSE3 kernel several times slower than the
/// AVX2 and AVX-512 ones the CPU can run (`vgg-dp peak` measures each).
///
/// vgg-dp's rule:
/// - `OPENBLAS_CORETYPE` set: never touched (a machine may set it as a guard).
/// - unset, and OpenBLAS fell back to a pre-AVX2 kernel on a CPU whose flags
///   (as the kernel reports them in /proc/cpuinfo) include AVX-512 F/BW/DQ/VL
///   or AVX2 + FMA: vgg-dp re-executes itself, before MPI starts, with
///   `OPENBLAS_CORETYPE` set to SkylakeX or Haswell, and checks that kernel's
///   sgemm against a double-precision reference first thing; a wrong answer
///   goes back to OpenBLAS's own choice with a warning.
/// - `VGGDP_OPENBLAS_KERNEL=keep` turns this off (the test suite sets it).
public enum BLASKernel {
    /// Kernels OpenBLAS may fall back to that use neither AVX2 nor AVX-512.
    static let old: Set<String> = ["Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Katmai",
                                   "Coppermine", "Northwood", "Banias", "Sandybridge", "generic", "unknown"]

    /// Set in the re-executed process: the kernel OpenBLAS had picked itself.
    public static let fallbackVariable = "VGGDP_OPENBLAS_FALLBACK"
    public static let switchVariable = "VGGDP_OPENBLAS_KERNEL"

    /// The CPU's feature flags, as /proc/cpuinfo lists them (empty if unknown).
    public static func cpuFlags() -> Set<String> {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
        return Set(line.split(separator: " ").map(String.init))
    }

    /// The kernel to re-execute with, or nil to keep what OpenBLAS picked.
    public static func upgrade(picked: String, flags: Set<String>, environment: [String: String]) -> String? {
        if let set = environment["OPENBLAS_CORETYPE"], !set.isEmpty { return nil }
        if environment[switchVariable] == "keep" || environment[fallbackVariable] != nil { return nil }
        guard old.contains(picked) else { return nil }
        if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl"]) { return "SkylakeX" }
        if flags.isSuperset(of: ["avx2", "fma"]) { return "Haswell" }
        return nil
    }

    /// Re-executes this program with a better kernel when `upgrade` says so;
    /// returns (and the program goes on as it is) otherwise or if exec fails.
    /// Call first thing in main, before MPI_Init.
    public static func reexecIfOutdated() {
        let env = ProcessInfo.processInfo.environment
        guard let kernel = upgrade(picked: BLAS.coreName, flags: cpuFlags(), environment: env) else { return }
        setenv("OPENBLAS_CORETYPE", kernel, 1)
        setenv(fallbackVariable, BLAS.coreName, 1)
        reexec()
        // exec failed: carry on with OpenBLAS's own choice.
        unsetenv("OPENBLAS_CORETYPE")
        unsetenv(fallbackVariable)
    }

    /// In a re-executed process: the kernel vgg-dp chose passes a numerical
    /// check, or the program re-executes once more with OpenBLAS's own choice
    /// (and says why).
    public static func verifyChosenKernel() {
        let env = ProcessInfo.processInfo.environment
        guard let fallback = env[fallbackVariable], env[switchVariable] != "keep" else { return }
        let error = sgemmError()
        if error > 1e-4 {
            FileHandle.standardError.write(Data("""
                vgg-dp: warning: OpenBLAS's \(BLAS.coreName) kernel gave a wrong sgemm (relative error \(error)); \
                going back to the \(fallback) kernel OpenBLAS picked itself\n
                """.utf8))
            unsetenv("OPENBLAS_CORETYPE")
            setenv(switchVariable, "keep", 1)
            reexec()
        }
    }

    /// Replaces this process with a new run of the same program and
    /// arguments (the environment as now set); returns only if exec fails.
    private static func reexec() {
        var argv: [UnsafeMutablePointer<CChar>?] = CommandLine.arguments.map { strdup($0) }
        argv.append(nil)
        execv("/proc/self/exe", &argv)
    }

    /// How this process's kernel was chosen, for the layout line and reports:
    /// nil when OpenBLAS chose it (from CPUID or OPENBLAS_CORETYPE).
    public static var choiceNote: String? {
        guard let fallback = ProcessInfo.processInfo.environment[fallbackVariable] else { return nil }
        return "chosen by vgg-dp: OPENBLAS_CORETYPE was unset and OpenBLAS picked \(fallback); "
            + "VGGDP_OPENBLAS_KERNEL=keep keeps OpenBLAS's choice"
    }

    /// Worst relative error of sgemm against a double-precision product, over
    /// shapes that exercise full and partial register blocks and both
    /// transposes (a few ms).
    static func sgemmError() -> Double {
        var worst = 0.0
        for (m, n, k, ta, tb) in [(67, 45, 131, false, false), (256, 96, 64, true, false), (33, 200, 17, false, true)] {
            let a = (0..<(m * k)).map { CounterRandom.symmetric(21, $0) }
            let b = (0..<(k * n)).map { CounterRandom.symmetric(22, $0) }
            var c = [Float](repeating: 0, count: m * n)
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in
                        BLAS.sgemm(transA: ta, transB: tb, m: m, n: n, k: k, a: pa.baseAddress!, lda: ta ? m : k,
                                   b: pb.baseAddress!, ldb: tb ? k : n, beta: 0, c: pc.baseAddress!, ldc: n)
                    }
                }
            }
            var scale = 0.0, err = 0.0
            for i in 0..<m {
                for j in 0..<n {
                    var s = 0.0
                    for p in 0..<k {
                        let x = Double(ta ? a[p * m + i] : a[i * k + p])
                        let y = Double(tb ? b[j * k + p] : b[p * n + j])
                        s += x * y
                    }
                    scale = max(scale, abs(s))
                    err = max(err, abs(s - Double(c[i * n + j])))
                }
            }
            worst = max(worst, err / max(scale, 1e-30))
        }
        return worst
    }

    /// A warning when OpenBLAS runs an old kernel on a CPU with AVX2 (only
    /// when vgg-dp did not or could not choose a better one).
    public static var advice: String? {
        let flags = cpuFlags()
        guard flags.contains("avx2") && flags.contains("fma"), old.contains(BLAS.coreName) else { return nil }
        let suggestion = flags.contains("avx512f") ? "Haswell (or SkylakeX)" : "Haswell"
        return "warning: OpenBLAS runs its \(BLAS.coreName) kernel on a CPU with AVX2\(flags.contains("avx512f") ? "/AVX-512" : ""); "
            + "OPENBLAS_CORETYPE=\(suggestion) is several times faster (compare with `vgg-dp peak`)"
    }
}
