import Dispatch

/// A group of channel values processed together by the loops outside BLAS:
/// `SIMD8<Float>` for the body of a channel run, `Float` for its tail. The
/// transforms are written once, generic over `Lane`, and specialised for both.
/// (The package is built for baseline x86-64, so a SIMD8 is two SSE
/// registers; explicit vectors do not depend on the loop vectoriser proving
/// that a dozen pointers do not alias.)
protocol Lane {
    static var laneWidth: Int { get }
    static func load(_ p: UnsafePointer<Float>) -> Self
    func store(_ p: UnsafeMutablePointer<Float>)
    static func + (a: Self, b: Self) -> Self
    static func - (a: Self, b: Self) -> Self
    static func * (a: Float, b: Self) -> Self
    /// max(self + bias, 0)
    func biasReLU(_ bias: Self) -> Self
    /// self where y > 0, else 0 (ReLU's backward).
    func reluMask(_ y: Self) -> Self
}

extension Float: Lane {
    @inline(__always) static var laneWidth: Int { 1 }
    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> Float { p.pointee }
    @inline(__always) func store(_ p: UnsafeMutablePointer<Float>) { p.pointee = self }
    @inline(__always) func biasReLU(_ bias: Float) -> Float { Swift.max(self + bias, 0) }
    @inline(__always) func reluMask(_ y: Float) -> Float { y > 0 ? self : 0 }
}

typealias F8 = SIMD8<Float>

extension SIMD8: Lane where Scalar == Float {
    @inline(__always) static var laneWidth: Int { 8 }
    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }
    @inline(__always) func store(_ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: self, as: SIMD8<Float>.self)
    }
    @inline(__always) func biasReLU(_ bias: SIMD8<Float>) -> SIMD8<Float> {
        // Not pointwiseMax: the standard library's generic version is an out-of-line call.
        let s = self + bias
        return s.replacing(with: 0, where: s .< 0)
    }
    @inline(__always) func reluMask(_ y: SIMD8<Float>) -> SIMD8<Float> { replacing(with: 0, where: y .<= 0) }
}

/// Runs `body` over `count` items split into at most `parts` contiguous
/// ranges, one per thread (the calling thread takes one), with the part's
/// index as a scratch slot. One part, or one item, runs inline: nothing is
/// dispatched when BLAS runs on one thread.
@inline(__always)
func parallelRanges(_ count: Int, parts: Int, _ body: (Range<Int>, Int) -> Void) {
    let p = min(parts, count)
    if p <= 1 {
        body(0..<count, 0)
        return
    }
    DispatchQueue.concurrentPerform(iterations: p) { i in
        body(count * i / p ..< count * (i + 1) / p, i)
    }
}

// MARK: - Element-wise passes shared by the convolution paths

/// dst[i] += src[i].
@inline(__always)
func addInPlace(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int) {
    var i = 0
    while i + 8 <= count { (F8.load(dst + i) + F8.load(src + i)).store(dst + i); i += 8 }
    while i < count { dst[i] += src[i]; i += 1 }
}

/// row[j] = max(row[j] + bias[j], 0) for `rows` rows of `k`.
@inline(__always)
func addBiasReLURows(_ y: UnsafeMutablePointer<Float>, rows: Range<Int>, k: Int, bias: UnsafePointer<Float>) {
    for r in rows {
        let row = y + r * k
        var j = 0
        while j + 8 <= k { F8.load(row + j).biasReLU(F8.load(bias + j)).store(row + j); j += 8 }
        while j < k { row[j] = Swift.max(row[j] + bias[j], 0); j += 1 }
    }
}

/// g = (y > 0 ? g : 0) in place and sum[j] += g over `rows` rows of `k`.
@inline(__always)
func reluBackwardRows(_ dy: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, rows: Range<Int>, k: Int,
                      sum: UnsafeMutablePointer<Float>) {
    for r in rows {
        let g = dy + r * k, out = y + r * k
        var j = 0
        while j + 8 <= k {
            let v = F8.load(g + j).reluMask(F8.load(out + j))
            v.store(g + j)
            (F8.load(sum + j) + v).store(sum + j)
            j += 8
        }
        while j < k {
            let v = g[j].reluMask(out[j])
            g[j] = v
            sum[j] += v
            j += 1
        }
    }
}

/// sum[j] += Σ_rows dy[r, j], in the order `reluBackwardRows` adds.
func sumRows(_ dy: UnsafePointer<Float>, rows: Range<Int>, k: Int, sum: UnsafeMutablePointer<Float>) {
    for r in rows {
        let g = dy + r * k
        var j = 0
        while j + 8 <= k {
            (F8.load(sum + j) + F8.load(g + j)).store(sum + j)
            j += 8
        }
        while j < k {
            sum[j] += g[j]
            j += 1
        }
    }
}
