import CMPI
import Foundation
import Vocabulary

public enum AllreduceBenchmark {
    /// Times in-place float allreduces of each size (in floats). Every rank
    /// must call it with the same arguments. `warmup` untimed calls first.
    public static func run(world: World, counts: [Int], iterations: Int, warmup: Int = 2) throws -> [AllreduceResult] {
        let largest = counts.max() ?? 0
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: max(largest, 1))
        buffer.initialize(repeating: 1, count: max(largest, 1))
        defer { buffer.deallocate() }
        var results: [AllreduceResult] = []
        for count in counts {
            for _ in 0..<warmup { try world.allreduceSum(buffer, count: count) }
            try world.barrier()
            let t0 = MPI_Wtime()
            for _ in 0..<iterations { try world.allreduceSum(buffer, count: count) }
            let local = (MPI_Wtime() - t0) / Double(max(iterations, 1))
            let seconds = try world.allreduceMax(local)
            let bytes = count * 4
            let algbw = Double(bytes) / seconds / 1e9
            let n = Double(world.size)
            results.append(AllreduceResult(bytes: bytes, count: count, iterations: iterations, seconds: seconds,
                                           algbwGBps: algbw, busbwGBps: algbw * 2 * (n - 1) / n,
                                           correct: try check(world: world, buffer: buffer, count: count)))
        }
        return results
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
    public static func runSequence(world: World, counts: [Int], iterations: Int) throws -> AllreduceResult {
        let total = counts.reduce(0, +)
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: max(total, 1))
        buffer.initialize(repeating: 1, count: max(total, 1))
        defer { buffer.deallocate() }
        func once() throws {
            var offset = 0
            for c in counts { try world.allreduceSum(buffer + offset, count: c); offset += c }
        }
        try once()
        try world.barrier()
        let t0 = MPI_Wtime()
        for _ in 0..<iterations { try once() }
        let seconds = try world.allreduceMax((MPI_Wtime() - t0) / Double(max(iterations, 1)))
        let bytes = total * 4
        let algbw = Double(bytes) / seconds / 1e9
        let n = Double(world.size)
        return AllreduceResult(bytes: bytes, count: total, iterations: iterations, seconds: seconds,
                               algbwGBps: algbw, busbwGBps: algbw * 2 * (n - 1) / n)
    }
}
