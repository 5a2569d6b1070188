import Foundation

/// One contiguous, zero-initialised block of floats, allocated once and never
/// resized. Parameters, gradients and momentum each live in one arena with
/// the same layout (as in llm.c), so consecutive layers form one contiguous
/// slice: the unit of an allreduce bucket and of an optimizer step.
public final class FloatArena {
    public let base: UnsafeMutablePointer<Float>
    public let count: Int
    /// Keeps borrowed memory alive (a host-shared window); nil when the arena owns its pages.
    private let owner: AnyObject?

    public init(count: Int) {
        self.count = count
        base = Pages.allocate(floats: count)
        owner = nil
    }

    /// An arena over `count` floats at `base` that `owner` allocated and keeps alive.
    public init(borrowing base: UnsafeMutablePointer<Float>, count: Int, owner: AnyObject) {
        self.base = base
        self.count = count
        self.owner = owner
    }

    deinit { if owner == nil { Pages.free(base, floats: count) } }

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

/// Zeroed, page-aligned float buffers straight from the kernel (anonymous
/// mmap). A page becomes resident when it is first written, so memory a run
/// never touches costs nothing: in forward mode the gradient arena and the
/// backward buffers stay out of the resident set.
public enum Pages {
    public static func allocate(floats: Int) -> UnsafeMutablePointer<Float> {
        let bytes = max(floats, 1) * MemoryLayout<Float>.stride
        guard let raw = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              raw != MAP_FAILED else {
            fatalError("vgg-dp: cannot map \(bytes) bytes: \(String(cString: strerror(errno)))")
        }
        return raw.bindMemory(to: Float.self, capacity: max(floats, 1))
    }

    public static func free(_ p: UnsafeMutablePointer<Float>, floats: Int) {
        munmap(UnsafeMutableRawPointer(p), max(floats, 1) * MemoryLayout<Float>.stride)
    }
}
