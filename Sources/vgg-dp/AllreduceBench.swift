import ArgumentParser
import Comm
import Foundation
import Reports
import Trainer
import VGGEngine
import Vocabulary

extension CostFit.Weighting: ExpressibleByArgument {}

struct AllreduceBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce-bench",
        abstract: "Time MPI_Allreduce (float, sum, in place) over sizes up to the whole gradient, as nccl-tests report it.",
        discussion: """
        With 2 or more ranks it then fits the ring cost T(bytes) = 2(N−1)·α + 2·((N−1)/N)·bytes·β to the table's \
        rows by least squares (α, β ≥ 0) and prints α in µs and 1/β in GB/s (the link bandwidth a ring uses). \
        --json FILE writes the table and the fit; `vgg-dp model --fit FILE` reads it.

        host_cpu_ms is the busy CPU of one host per call (rank 0's machine from /proc/stat, every process and the \
        kernel, divided by the hosts on that machine). With --comm-wait polling the ranks sleep between tests, so \
        across hosts it is what moving the bytes costs (TCP stack, copies, sums); the fit then also gives the host \
        CPU per byte on the link, which `vgg-dp model` charges to backward where a host has no idle core.
        """)

    /// The model whose gradient sets the largest size and the bucket plan.
    @OptionGroup var network: NetworkOptions
    @Option(help: "Smallest size in bytes.") var minBytes = 4
    @Option(help: "Largest size in bytes (default: the whole gradient).") var maxBytes: Int?
    @Option(help: "Iterations for the largest size; smaller sizes run more, up to 1000.") var iterations = 5
    @Option(help: "Bucket size in MiB for the bucketed row.") var bucketMb: Double = 25
    @Option(help: ArgumentHelp("Write the table and the α-β fit as JSON to this file (rank 0).", valueName: "FILE"))
    var json: String?
    @Option(help: "Weigh the fit's rows by relative error (every size counts the same) or absolute error (large sizes dominate).")
    var fitWeighting: CostFit.Weighting = .relative
    @Option(help: ArgumentHelp("Wait in a blocking MPI_Allreduce (busy-polling inside MPI), or poll MPI_Iallreduce with MPI_Test every 200 µs, as the trainer's --comm-wait polling does; polled, host_cpu_ms is the CPU that moving the bytes costs, not a spinning wait.", valueName: "blocking|polling"))
    var commWait: CommWait = .blocking

    func run() throws {
        let started = Date()
        try withWorld { world in
            let spec = network.spec
            try spec.validate()
            // Only rank 0 writes, and on a cluster the folder may exist on its
            // host alone: rank 0 checks, and every rank learns the verdict.
            var problem: String?
            if world.isRoot {
                do { try checkWritable(json, flag: "--json") } catch let e as TrainerError { problem = e.description }
            }
            if try world.allreduceMax(problem == nil ? 0 : 1) > 0 {
                throw TrainerError.usage(problem ?? "--json: rank 0 cannot write \(json ?? "")")
            }
            let gradientBytes = spec.parameterCount * 4
            let top = maxBytes ?? gradientBytes
            guard minBytes >= 4, top >= minBytes, iterations >= 1 else {
                throw TrainerError.usage("need 4 ≤ --min-bytes ≤ --max-bytes and --iterations ≥ 1")
            }
            guard commWait != .auto else {
                throw TrainerError.usage("allreduce-bench --comm-wait: give blocking or polling (auto is the trainer's choice for its layout)")
            }
            try checkBufferFits(top: top, gradientBytes: gradientBytes, world: world)
            let hostsPerMachine = try AllreduceBenchmark.hostsSharingRootMachine(world: world)
            var counts: [Int] = []
            var b = minBytes
            while b < top { counts.append(b / 4); b *= 2 }
            counts.append(top / 4)
            if world.isRoot {
                printOut("# allreduce-bench: \(world.size) ranks, MPI_FLOAT sum in place, \(World.libraryVersion)")
                printOut("# wait: " + GradientWire.describe(commWait))
                printOut("# algbw = bytes/time; busbw = algbw·2(N−1)/N; time = slowest rank, mean of iterations")
                printOut("# host_cpu_ms = busy CPU of one host per call: rank 0's machine (/proc/stat: user+nice+system+irq+softirq, every process) ÷ the \(hostsPerMachine) host(s) on it")
                printOut(String(format: "%14@ %12@ %8@ %12@ %10@ %10@ %6@ %12@", "bytes" as NSString, "count" as NSString, "iters" as NSString,
                                "time_us" as NSString, "algbw_GB/s" as NSString, "busbw_GB/s" as NSString, "check" as NSString,
                                "host_cpu_ms" as NSString))
            }
            var wrong: [Int] = []
            var rows: [AllreduceResult] = []
            for count in counts {
                let iters = min(1000, max(iterations, iterations * (top / 4) / max(count, 1)))
                let r = try AllreduceBenchmark.run(world: world, counts: [count], iterations: iters, wait: commWait,
                                                   hostsPerMachine: hostsPerMachine)[0]
                if world.isRoot { printOut(row(r)) }
                if !r.correct { wrong.append(r.bytes) }
                rows.append(r)
            }
            // The trainer's bucketed exchange of the whole gradient vs one call.
            let plan = BucketPlan(spec: spec, bucketMB: bucketMb)
            let whole = try AllreduceBenchmark.run(world: world, counts: [spec.parameterCount], iterations: iterations, wait: commWait,
                                                   hostsPerMachine: hostsPerMachine)[0]
            let bucketed = try AllreduceBenchmark.runSequence(world: world, counts: plan.buckets.map(\.slice.count), iterations: iterations,
                                                              wait: commWait, hostsPerMachine: hostsPerMachine)
            if world.isRoot {
                printOut("# whole gradient: \(Text.grouped(gradientBytes)) bytes (\(spec.model.rawValue), \(Text.grouped(spec.parameterCount)) fp32 parameters)")
                printOut("# whole gradient, one call:")
                printOut(row(whole))
                printOut("# whole gradient in \(plan.buckets.count) buckets of ~\(bucketMb) MiB, back to back:")
                printOut(row(bucketed))
                var fit: CostFit?
                if world.size < 2 {
                    printOut("# fit: none (one rank exchanges nothing; run with 2 or more ranks)")
                } else {
                    do {
                        let f = try AllreduceBenchRecord.fit(ranks: world.size, hosts: Set(world.hostNames).count, rows: rows,
                                                             weighting: fitWeighting)
                        fit = f
                        printOut("# fit of T(bytes) = 2(N−1)·α + 2·((N−1)/N)·bytes·β to the \(rows.count) rows above:")
                        printOut("#   " + f.summary)
                        printOut("# fit: alpha_us \(Text.fixed(f.cost.alpha * 1e6, 3)) beta_GB/s \(Text.fixed(f.cost.bandwidthGBps, 4))")
                    } catch let e as TrainerError {
                        printOut("# fit: none (\(e.description))")
                    }
                }
                if let json {
                    let record = AllreduceBenchRecord(
                        startedAt: ISO8601DateFormatter().string(from: started), ranks: world.size, hosts: world.hostNames,
                        mpiLibrary: World.libraryVersion, model: spec.model.rawValue, imageSize: spec.imageSize,
                        widthDivisor: spec.widthDivisor, classes: spec.classes, gradientBytes: gradientBytes,
                        bucketMb: bucketMb, commWait: commWait, rows: rows, wholeGradient: whole, bucketed: bucketed, fit: fit)
                    try record.write(to: json)
                    printOut("# json: \(json)")
                }
            }
            if !wrong.isEmpty {
                throw TrainerError.failed("allreduce gave wrong sums at sizes (bytes): \(wrong.map(String.init).joined(separator: ", "))")
            }
        }
    }

    /// The largest buffer (the top size, or the whole gradient) must fit
    /// MPI's count, an Int32 of floats, and the memory of every host with
    /// each of its ranks holding one; every rank gets the same verdict, so
    /// no rank waits in a collective the others skipped.
    func checkBufferFits(top: Int, gradientBytes: Int, world: World) throws {
        let largestCount = Int(Int32.max)
        guard top / 4 <= largestCount, gradientBytes / 4 <= largestCount else {
            let flag = top / 4 > largestCount ? "--max-bytes \(top)" : "the whole gradient (\(gradientBytes) bytes)"
            throw TrainerError.usage("\(flag) is more than MPI's element count allows: at most \(largestCount) floats (\(Text.grouped(largestCount * 4)) bytes) per call")
        }
        let perRank = max(top, gradientBytes)
        var problem: String?
        if let available = availableMemoryBytes(), perRank * world.localSize > available {
            let what = top >= gradientBytes ? "--max-bytes \(top)" : "the whole gradient (\(gradientBytes) bytes, \(network.model.rawValue))"
            problem = "\(what) needs a \(gibibytes(perRank)) buffer on each of the \(world.localSize) rank(s) of host \(world.hostNames[world.rank]), "
                + "which has \(gibibytes(available)) available (MemAvailable): use --max-bytes \(available / max(world.localSize, 1) / 4 * 4) or less"
                + (top >= gradientBytes ? "" : ", and a smaller model")
        }
        if try world.allreduceMax(problem == nil ? 0 : 1) > 0 {
            var message = problem ?? ""
            if world.size > 1 { message = try world.broadcast(world.isRoot ? message : "") }
            throw TrainerError.usage(message.isEmpty ? "a host other than rank 0's has too little memory for \(gibibytes(perRank)) per rank" : message)
        }
    }

    func row(_ r: AllreduceResult) -> String {
        String(format: "%14d %12d %8d %12.1f %10.3f %10.3f %6@ %12@", r.bytes, r.count, r.iterations, r.seconds * 1e6,
               r.algbwGBps, r.busbwGBps, (r.correct ? "ok" : "WRONG") as NSString,
               (r.hostCpuSeconds.map { String(format: "%.3f", $0 * 1e3) } ?? "-") as NSString)
    }
}
