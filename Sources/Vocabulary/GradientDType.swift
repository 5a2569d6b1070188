/// The type gradients travel in. 16-bit formats halve the bytes on the wire.
/// With a 16-bit type every addition of the reduction widens both operands
/// to fp32, adds, and rounds the sum back to 16 bits, so each hop of the
/// reduction rounds (Comm's HalfPrecision does the conversions and the op).
public enum GradientDType: String, CaseIterable, Codable, Sendable {
    case fp32, bf16, fp16

    public var bytes: Int { self == .fp32 ? 4 : 2 }
}
