import Foundation
import Vocabulary

/// Link rates and latencies as people (and tc) write them.
public enum Units {
    /// "25gbit", "10Gbit", "500mbit", "1.5gbit", "100gbit/s" → bits per second.
    /// Units: bit, kbit, mbit, gbit, tbit (powers of 1000), case-insensitive.
    public static func bitsPerSecond(_ text: String) throws -> Double {
        var s = text.trimmingCharacters(in: .whitespaces).lowercased()
        if s.hasSuffix("/s") { s.removeLast(2) }
        let (value, unit) = split(s)
        let scale: [String: Double] = ["bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12]
        guard let v = value, let m = scale[unit], v > 0, v.isFinite else {
            throw TrainerError.usage("'\(text)' is not a link rate: write a number and bit, kbit, mbit, gbit or tbit, e.g. 25gbit")
        }
        return v * m
    }

    /// "5us", "5µs", "1.5ms", "500ns", "0.001s", "0" → seconds. A bare number
    /// other than 0 is refused (which unit?).
    public static func seconds(_ text: String) throws -> Double {
        let s = text.trimmingCharacters(in: .whitespaces).lowercased()
        let (value, unit) = split(s)
        let scale: [String: Double] = ["ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1]
        guard let v = value, v >= 0, v.isFinite, let m = unit.isEmpty && v == 0 ? 1 : scale[unit] else {
            throw TrainerError.usage("'\(text)' is not a latency: write a number and ns, us, ms or s, e.g. 5us")
        }
        return v * m
    }

    /// "3221225472", "3072MiB", "3GiB", "2.5gib" → bytes. Units: none
    /// (bytes), B, KiB, MiB, GiB, TiB (powers of 1024), case-insensitive.
    public static func bytes(_ text: String) throws -> Int {
        let s = text.trimmingCharacters(in: .whitespaces).lowercased()
        let (value, unit) = split(s)
        let scale: [String: Double] = ["": 1, "b": 1, "kib": 1024, "mib": 1_048_576, "gib": 1_073_741_824, "tib": 1_099_511_627_776]
        guard let v = value, let m = scale[unit], v > 0, v * m < 9e18 else {
            throw TrainerError.usage("'\(text)' is not a size: write a number of bytes, or a number and KiB, MiB, GiB or TiB, e.g. 16GiB")
        }
        return Int((v * m).rounded(.down))
    }

    /// The leading number and the rest.
    static func split(_ s: String) -> (Double?, String) {
        let digits = s.prefix { $0.isNumber || $0 == "." }
        guard !digits.isEmpty, digits.filter({ $0 == "." }).count <= 1 else { return (nil, "") }
        return (Double(digits), String(s.dropFirst(digits.count)).trimmingCharacters(in: .whitespaces))
    }
}
