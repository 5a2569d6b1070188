import ArgumentParser
import Foundation
import Reports
import Trainer
import VGGEngine
import Vocabulary

struct Peak: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure sgemm GFLOP/s with the given thread count: the machine's limit for this engine.")

    @Option(help: "BLAS threads.") var threads = 1
    @Option(help: "Matrix side.") var size = 2048
    @Option(help: "Timed repetitions (best is reported).") var repeats = 5

    func run() throws {
        guard threads >= 1, size >= 1, repeats >= 1 else {
            throw TrainerError.usage("--threads, --size and --repeats must be at least 1")
        }
        // Three size × size float matrices; BLAS takes each side as a 32-bit int.
        guard size <= Int(Int32.max) else {
            throw TrainerError.usage("--size \(size) is more than BLAS's 32-bit matrix side (\(Int32.max))")
        }
        let (square, o1) = size.multipliedReportingOverflow(by: size)
        let (bytes, o2) = square.multipliedReportingOverflow(by: 12)
        if let available = availableMemoryBytes(), o1 || o2 || bytes > available {
            let largest = Int((Double(available) / 12).squareRoot())
            throw TrainerError.usage("""
                --size \(size) needs three \(size)×\(size) float matrices\(o1 || o2 ? "" : " (\(gibibytes(bytes)))"); \
                this machine has \(gibibytes(available)) available (MemAvailable): use --size \(largest) or less
                """)
        }
        BLAS.setThreads(threads)
        let r = BLAS.peakGFLOPS(n: size, repeats: repeats)
        let times = r.seconds.map { Text.fixed($0 * 1000, 1) }.joined(separator: " ")
        printOut("peak: sgemm \(size)×\(size)×\(size), \(threads) thread(s), OpenBLAS \(BLAS.coreName)\(BLASKernel.choiceNote == nil ? "" : " (chosen by vgg-dp)"): \(Text.fixed(r.gflops, 1)) GFLOP/s (best of \(repeats); ms: \(times))")
    }
}
