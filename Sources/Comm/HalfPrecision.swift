import CMPI
import Vocabulary

/// fp32 ↔ 16-bit conversions (round to nearest even) and the MPI reduction
/// on 16-bit values: each addition widens both operands to fp32, adds, and
/// rounds once. We convert around the exchange rather than define an MPI
/// datatype for fp32-in-16-bit, because MPI reductions run on the wire
/// format: a user-defined op on MPI_UINT16_T is the portable way, and it
/// works for every allreduce algorithm OpenMPI picks (ring, recursive
/// doubling, …).
public enum HalfPrecision {
    @inline(__always)
    public static func bf16(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: (bits >> 16) | 0x40) }
        let rounding: UInt32 = 0x7FFF + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    @inline(__always)
    public static func float(bf16 h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

    @inline(__always)
    public static func fp16(_ x: Float) -> UInt16 { Float16(x).bitPattern }

    @inline(__always)
    public static func float(fp16 h: UInt16) -> Float { Float(Float16(bitPattern: h)) }

    public static func encode(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<UInt16>, count: Int, _ type: GradientDType) {
        switch type {
        case .bf16: for i in 0..<count { dst[i] = bf16(src[i]) }
        case .fp16: for i in 0..<count { dst[i] = fp16(src[i]) }
        case .fp32: preconditionFailure("fp32 needs no conversion")
        }
    }

    public static func decode(_ src: UnsafePointer<UInt16>, _ dst: UnsafeMutablePointer<Float>, count: Int, _ type: GradientDType) {
        switch type {
        case .bf16: for i in 0..<count { dst[i] = float(bf16: src[i]) }
        case .fp16: for i in 0..<count { dst[i] = float(fp16: src[i]) }
        case .fp32: preconditionFailure("fp32 needs no conversion")
        }
    }

    /// The MPI reduction ops, created once per process (C function pointers:
    /// the closures capture nothing).
    static let sumBF16: MPI_Op = {
        var op: MPI_Op? = nil
        MPI_Op_create({ a, b, n, _ in
            let x = a!.assumingMemoryBound(to: UInt16.self), y = b!.assumingMemoryBound(to: UInt16.self)
            for i in 0..<Int(n!.pointee) { y[i] = HalfPrecision.bf16(HalfPrecision.float(bf16: x[i]) + HalfPrecision.float(bf16: y[i])) }
        }, 1, &op)
        return op!
    }()

    static let sumFP16: MPI_Op = {
        var op: MPI_Op? = nil
        MPI_Op_create({ a, b, n, _ in
            let x = a!.assumingMemoryBound(to: UInt16.self), y = b!.assumingMemoryBound(to: UInt16.self)
            for i in 0..<Int(n!.pointee) { y[i] = HalfPrecision.fp16(HalfPrecision.float(fp16: x[i]) + HalfPrecision.float(fp16: y[i])) }
        }, 1, &op)
        return op!
    }()

    static func op(_ type: GradientDType) -> MPI_Op {
        type == .bf16 ? sumBF16 : sumFP16
    }
}
