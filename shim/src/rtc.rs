//! The CMOS real-time clock's registers to seconds since the Unix epoch (pure maths; the
//! native platform reads the registers). QEMU keeps the RTC in UTC.

/// Raw register values: seconds (0x00), minutes (0x02), hours (0x04), day (0x07),
/// month (0x08), year (0x09), status B (0x0b).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcRegisters {
    pub sec: u8,
    pub min: u8,
    pub hour: u8,
    pub day: u8,
    pub month: u8,
    pub year: u8,
    pub status_b: u8,
}

/// Status B bit 2: values are binary, not BCD. Bit 1: 24-hour mode.
const STATUS_B_BINARY: u8 = 1 << 2;
const STATUS_B_24H: u8 = 1 << 1;
/// In 12-hour mode, bit 7 of the hour register means PM.
const HOUR_PM: u8 = 0x80;
/// The RTC's two-digit year is taken as 20yy.
const CENTURY: u64 = 2000;

/// Days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil).
pub fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let (y, m) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the epoch, or None if the registers do not hold a valid date and time.
pub fn unix_seconds(r: RtcRegisters) -> Option<u64> {
    let binary = r.status_b & STATUS_B_BINARY != 0;
    let conv = |v: u8| -> Option<u64> {
        if binary {
            return Some(v as u64);
        }
        let (hi, lo) = (v >> 4, v & 0x0f);
        (hi <= 9 && lo <= 9).then_some(hi as u64 * 10 + lo as u64)
    };
    let pm = r.status_b & STATUS_B_24H == 0 && r.hour & HOUR_PM != 0;
    let mut hour = conv(r.hour & !HOUR_PM)?;
    if r.status_b & STATUS_B_24H == 0 {
        // 12-hour mode: 12 AM is 0, 12 PM is 12.
        hour = (hour % 12) + if pm { 12 } else { 0 };
    }
    let (sec, min, day, month, year) = (conv(r.sec)?, conv(r.min)?, conv(r.day)?, conv(r.month)?, conv(r.year)?);
    if sec > 59 || min > 59 || hour > 23 || !(1..=31).contains(&day) || !(1..=12).contains(&month) || year > 99 {
        return None;
    }
    Some(days_from_civil(CENTURY + year, month, day) * 86_400 + hour * 3600 + min * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BCD_24H: u8 = STATUS_B_24H;

    #[test]
    fn known_dates() {
        // 2026-11-25 22:35:01 UTC = 1795646101.
        let r = RtcRegisters { sec: 0x01, min: 0x35, hour: 0x22, day: 0x25, month: 0x11, year: 0x26, status_b: BCD_24H };
        assert_eq!(unix_seconds(r), Some(1_795_646_101));
        // The same in binary mode.
        let r = RtcRegisters { sec: 1, min: 35, hour: 22, day: 25, month: 11, year: 26, status_b: BCD_24H | STATUS_B_BINARY };
        assert_eq!(unix_seconds(r), Some(1_795_646_101));
        // 2000-03-01 00:00:00 (after a leap day) and 12-hour mode 12 AM / 12 PM.
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        let r = RtcRegisters { sec: 0, min: 0, hour: 0x12, day: 1, month: 3, year: 0, status_b: 0 };
        assert_eq!(unix_seconds(r), Some(11_017 * 86_400), "12 AM is midnight");
        let r = RtcRegisters { hour: 0x12 | HOUR_PM, ..r };
        assert_eq!(unix_seconds(r), Some(11_017 * 86_400 + 12 * 3600), "12 PM is noon");
        println!("checked: BCD, binary, leap year, 12-hour mode");
    }

    #[test]
    fn garbage_is_refused_not_computed() {
        let ok = RtcRegisters { sec: 0, min: 0, hour: 0, day: 1, month: 1, year: 0x26, status_b: BCD_24H };
        assert!(unix_seconds(ok).is_some());
        for bad in [RtcRegisters { sec: 0x5a, ..ok }, RtcRegisters { month: 0, ..ok }, RtcRegisters { month: 0x13, ..ok }, RtcRegisters { day: 0, ..ok }, RtcRegisters { hour: 0x24, ..ok }, RtcRegisters { year: 0xff, ..ok }] {
            assert_eq!(unix_seconds(bad), None, "{bad:?}");
        }
        println!("checked: 6 invalid register sets refused");
    }
}
