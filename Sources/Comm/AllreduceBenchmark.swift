import CMPI
import Foundation
import Vocabulary

public enum AllreduceBenchmark {
    /// Times in-place float allreduces of each size (in floats). Every rank
    /// must call it with the same arguments. `warmup` untimed calls first.
    /// `wait`: a blocking MPI_Allreduce, or MPI_Iallreduce tested every
    /// 200 µs as the trainer's polling wait does (`CommWait`). Each row also
    /// holds the busy CPU time of one host per call, rank 0's machine read
    /// from /proc/stat and divided by `hostsPerMachine`
    /// (`hostsSharingRootMachine`).
    public static func run(world: World, counts: [Int], iterations: Int, warmup: Int = 2, wait: CommWait = .blocking,
                           hostsPerMachine: Int = 1) throws -> [AllreduceResult] {
        let largest = counts.max() ?? 0
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: max(largest, 1))
        buffer.initialize(repeating: 1, count: max(largest, 1))
        defer { buffer.deallocate() }
        let wire = GradientWire(dtype: .fp32, capacity: 0, wait: wait)
        var results: [AllreduceResult] = []
        for count in counts {
            for _ in 0..<warmup { try world.allreduceSum(buffer, count: count, wire: wire) }
            let (seconds, cpu) = try timed(world: world, iterations: iterations, hostsPerMachine: hostsPerMachine) {
                try world.allreduceSum(buffer, count: count, wire: wire)
            }
            let bytes = count * 4
            let algbw = Double(bytes) / seconds / 1e9
            let n = Double(world.size)
            results.append(AllreduceResult(bytes: bytes, count: count, iterations: iterations, seconds: seconds,
                                           algbwGBps: algbw, busbwGBps: algbw * 2 * (n - 1) / n,
                                           correct: try check(world: world, buffer: buffer, count: count),
                                           hostCpuSeconds: cpu))
        }
        return results
    }

    /// After a barrier, `iterations` calls of `call`: the slowest rank's
    /// mean seconds per call, and this machine's busy CPU per call and host.
    static func timed(world: World, iterations: Int, hostsPerMachine: Int,
                      _ call: () throws -> Void) throws -> (seconds: Double, hostCpu: Double?) {
        try world.barrier()
        let cpu0 = MachineCPU.busySeconds()
        let t0 = MPI_Wtime()
        for _ in 0..<iterations { try call() }
        let local = (MPI_Wtime() - t0) / Double(max(iterations, 1))
        let cpu = MachineCPU.perCall(from: cpu0, calls: iterations, hosts: hostsPerMachine)
        return (try world.allreduceMax(local), cpu)
    }

    /// How many of the job's hosts (host names) run on rank 0's machine (one
    /// kernel, by its boot id): 1 on a real cluster, all of them on a
    /// simulated one. Collective.
    public static func hostsSharingRootMachine(world: World) throws -> Int {
        let machines = try world.allgather(MachineCPU.machineID())
        return Set(world.hostNames.indices.filter { machines[$0] == machines[0] }.map { world.hostNames[$0] }).count
    }
}

extension AllreduceBenchmark {
    /// Rank r contributes r + 1 + (i mod 7) at element i; the sum is
    /// N(N+1)/2 + N·(i mod 7), exact in float for any N this tool will see.
    /// True only if every rank got it right.
    static func check(world: World, buffer: UnsafeMutablePointer<Float>, count: Int) throws -> Bool {
        for i in 0..<count { buffer[i] = Float(world.rank + 1 + i % 7) }
        try world.allreduceSum(buffer, count: count)
        let n = world.size
        var ok = true
        for i in 0..<count where buffer[i] != Float(n * (n + 1) / 2 + n * (i % 7)) { ok = false; break }
        let bad = try world.allreduceMax(ok ? 0 : 1)
        for i in 0..<count { buffer[i] = 1 }
        return bad == 0
    }

    /// Times a sequence of allreduces of the given sizes back to back (one
    /// step's buckets), reported as one transfer of their total size.
    public static func runSequence(world: World, counts: [Int], iterations: Int, wait: CommWait = .blocking,
                                   hostsPerMachine: Int = 1) throws -> AllreduceResult {
        let total = counts.reduce(0, +)
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: max(total, 1))
        buffer.initialize(repeating: 1, count: max(total, 1))
        defer { buffer.deallocate() }
        let wire = GradientWire(dtype: .fp32, capacity: 0, wait: wait)
        func once() throws {
            var offset = 0
            for c in counts { try world.allreduceSum(buffer + offset, count: c, wire: wire); offset += c }
        }
        try once()
        let (seconds, cpu) = try timed(world: world, iterations: iterations, hostsPerMachine: hostsPerMachine, once)
        let bytes = total * 4
        let algbw = Double(bytes) / seconds / 1e9
        let n = Double(world.size)
        return AllreduceResult(bytes: bytes, count: total, iterations: iterations, seconds: seconds,
                               algbwGBps: algbw, busbwGBps: algbw * 2 * (n - 1) / n, hostCpuSeconds: cpu)
    }
}

/// The machine's CPU time as the kernel counts it in /proc/stat.
enum MachineCPU {
    /// Seconds every core of the machine has spent busy since boot: user,
    /// nice, system, irq and softirq (not idle, iowait or steal; guest time
    /// is inside user). nil where /proc/stat cannot be read.
    static func busySeconds() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return nil }
        let ticks = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard ticks.count >= 7 else { return nil }
        let busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]
        return busy / Double(max(sysconf(Int32(_SC_CLK_TCK)), 1))
    }

    /// Busy seconds since `start` per call and per host; nil without a start.
    static func perCall(from start: Double?, calls: Int, hosts: Int) -> Double? {
        guard let start, let end = busySeconds() else { return nil }
        return max(0, end - start) / Double(max(calls, 1)) / Double(max(hosts, 1))
    }

    /// The running kernel's boot id, hashed (FNV-1a): equal for every
    /// process of one machine, network and UTS namespaces included.
    static func machineID() -> UInt64 {
        let id = (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)) ?? ProcessInfo.processInfo.hostName
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in id.trimmingCharacters(in: .whitespacesAndNewlines).utf8 {
            h = (h ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return h
    }
}
