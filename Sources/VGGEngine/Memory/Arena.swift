/// One contiguous, zero-initialised block of floats, allocated once and never
/// resized. Parameters, gradients and momentum each live in one arena with
/// the same layout (as in llm.c), so consecutive layers form one contiguous
/// slice: the unit of an allreduce bucket and of an optimizer step.
public final class FloatArena {
    public let base: UnsafeMutablePointer<Float>
    public let count: Int

    public init(count: Int) {
        self.count = count
        // 64-byte alignment keeps every SIMD load aligned at the arena's start.
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        base.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { UnsafeMutableRawPointer(base).deallocate() }

    public subscript(i: Int) -> Float {
        get { base[i] }
        set { base[i] = newValue }
    }

    public func pointer(at offset: Int) -> UnsafeMutablePointer<Float> { base + offset }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: base, count: count) }

    public func copy(from other: FloatArena) {
        precondition(other.count == count)
        base.update(from: other.base, count: count)
    }

    public func toArray() -> [Float] { Array(buffer) }
}

/// A half-open range of an arena, in floats.
public struct ArenaSlice: Equatable, Codable, Sendable {
    public var offset: Int
    public var count: Int
    public init(offset: Int, count: Int) { self.offset = offset; self.count = count }
    public var end: Int { offset + count }
}
