//! The 12-digit personal identification number (số định danh cá nhân, printed on the CCCD /
//! căn cước card), checked against the birth date and sex a person declares.
//!
//! Layout: `PPP G YY NNNNNN`
//! - `PPP`: code of the province where the birth was registered (the 63-code table below; the
//!   2025 merger of provinces does not renumber issued IDs). 100 or more: registered abroad.
//! - `G`: century and sex together. Even = male, odd = female; 0/1 = born 1900–1999,
//!   2/3 = 2000–2099, 4/5 = 2100–2199, and so on.
//! - `YY`: last two digits of the birth year.
//! - `NNNNNN`: random.
//!
//! There is **no check digit**. All we can say about a number is that it is *consistent* with
//! what the person declared, never that it is valid or that it belongs to them: that takes the
//! national population database (VNeID). So nothing here says "valid"/"hợp lệ".
//!
//! The number is personal data: [`NationalId`]'s `Debug` prints only the masked form, and it
//! has no `Display`, so it cannot slip into a log line by accident.
//!
//! Pure: no I/O, no clock (today's date is an argument).

use std::fmt;
use std::str::FromStr;

use crate::i18n::Lang;

/// Sex as encoded in the ID number (giới tính). Only the two values the number can encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    Male,
    Female,
}

impl Sex {
    pub fn as_str(self) -> &'static str {
        match self {
            Sex::Male => "male",
            Sex::Female => "female",
        }
    }

    fn label(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Sex::Male, Lang::Vi) => "nam",
            (Sex::Female, Lang::Vi) => "nữ",
            (Sex::Male, Lang::En) => "male",
            (Sex::Female, Lang::En) => "female",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("sex must be \"male\" or \"female\"")]
pub struct ParseSexError;

impl FromStr for Sex {
    type Err = ParseSexError;

    /// Accepts the serde spellings, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("male") {
            Ok(Sex::Male)
        } else if s.eq_ignore_ascii_case("female") {
            Ok(Sex::Female)
        } else {
            Err(ParseSexError)
        }
    }
}

/// A 12-digit ID number that passed [`check_consistency`]. Consistent, not proven.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NationalId(String);

impl NationalId {
    /// The full 12 digits. Handle as personal data: never log it, never use it as `sub`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `0790******56`: safe for logs and pages.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

impl fmt::Debug for NationalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("NationalId").field(&self.masked()).finish()
    }
}

/// One part of the number that disagrees with the format or with the declared data.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdNumberProblem {
    /// Only digits, but not twelve of them (0 = nothing entered).
    #[error("the ID number has {digits} digits instead of 12")]
    WrongLength { digits: usize },
    /// Something other than digits (letters, punctuation, non-ASCII digits).
    #[error("the ID number contains characters other than digits")]
    NotDigits,
    /// Nine digits: the old identity card (CMND) number, which is a different number.
    #[error("the ID number looks like an old 9-digit CMND number")]
    OldCmndNumber,
    /// `PPP` below 100 and not in the province table.
    #[error("the ID number's first three digits {code} are not a known province code")]
    UnknownProvince { code: String },
    /// `G` places the birth in a century other than the declared birth year's.
    #[error("the ID number's century digit {digit} does not match birth year {declared_year}")]
    CenturyMismatch { digit: u8, declared_year: i32 },
    /// `G`'s parity says the other sex.
    #[error("the ID number's sex digit {digit} does not match the declared sex")]
    SexMismatch { digit: u8, encoded: Sex, declared: Sex },
    /// `YY` differs from the last two digits of the declared birth year.
    #[error("the ID number encodes birth year {encoded_year}, declared {declared_year}")]
    BirthYearMismatch { yy: u8, encoded_year: i32, declared_year: i32 },
    /// The declared birth date is after `today`.
    #[error("the declared date of birth is in the future")]
    BirthDateInFuture { declared: time::Date },
}

impl IdNumberProblem {
    /// A sentence for the person who typed the number, saying which part disagrees and what it
    /// encodes.
    pub fn message(&self, lang: Lang) -> String {
        match (self, lang) {
            (IdNumberProblem::WrongLength { digits: 0 }, Lang::Vi) => {
                "Vui lòng nhập số định danh cá nhân (12 chữ số).".to_owned()
            }
            (IdNumberProblem::WrongLength { digits: 0 }, Lang::En) => {
                "Please enter your personal ID number (12 digits).".to_owned()
            }
            (IdNumberProblem::WrongLength { digits }, Lang::Vi) => {
                format!("Số định danh cá nhân phải gồm đúng 12 chữ số; số bạn nhập có {digits} chữ số.")
            }
            (IdNumberProblem::WrongLength { digits }, Lang::En) => {
                format!("The personal ID number must be exactly 12 digits; the number you entered has {digits}.")
            }
            (IdNumberProblem::NotDigits, Lang::Vi) => {
                "Số định danh cá nhân chỉ gồm 12 chữ số, không có chữ cái hay ký hiệu.".to_owned()
            }
            (IdNumberProblem::NotDigits, Lang::En) => {
                "The personal ID number is made of 12 digits only, with no letters or symbols.".to_owned()
            }
            (IdNumberProblem::OldCmndNumber, Lang::Vi) => {
                "Đây có vẻ là số chứng minh nhân dân (CMND) 9 số cũ. Vui lòng nhập số định danh \
                 cá nhân 12 số, in trên thẻ căn cước hoặc thẻ căn cước công dân."
                    .to_owned()
            }
            (IdNumberProblem::OldCmndNumber, Lang::En) => {
                "This looks like an old 9-digit identity card (CMND) number. Please enter your \
                 12-digit personal ID number, printed on your identity card (căn cước)."
                    .to_owned()
            }
            (IdNumberProblem::UnknownProvince { code }, Lang::Vi) => format!(
                "Ba chữ số đầu của số định danh ({code}) không phải mã của tỉnh, thành phố \
                 nơi đăng ký khai sinh nào."
            ),
            (IdNumberProblem::UnknownProvince { code }, Lang::En) => format!(
                "The first three digits of the ID number ({code}) are not the code of any \
                 province or city where a birth is registered."
            ),
            (IdNumberProblem::CenturyMismatch { digit, declared_year }, Lang::Vi) => {
                let (from, to) = century_range(*digit);
                format!(
                    "Chữ số thứ tư của số định danh ({digit}) cho biết năm sinh trong khoảng \
                     {from}–{to}, nhưng ngày sinh bạn khai là năm {declared_year}."
                )
            }
            (IdNumberProblem::CenturyMismatch { digit, declared_year }, Lang::En) => {
                let (from, to) = century_range(*digit);
                format!(
                    "The fourth digit of the ID number ({digit}) encodes a birth year in \
                     {from}–{to}, but the declared date of birth is in {declared_year}."
                )
            }
            (IdNumberProblem::SexMismatch { digit, encoded, declared }, Lang::Vi) => format!(
                "Chữ số thứ tư của số định danh ({digit}) cho biết giới tính {}, nhưng giới \
                 tính bạn khai là {}.",
                encoded.label(Lang::Vi),
                declared.label(Lang::Vi),
            ),
            (IdNumberProblem::SexMismatch { digit, encoded, declared }, Lang::En) => format!(
                "The fourth digit of the ID number ({digit}) encodes sex {}, but the declared \
                 sex is {}.",
                encoded.label(Lang::En),
                declared.label(Lang::En),
            ),
            (IdNumberProblem::BirthYearMismatch { yy, encoded_year, declared_year }, Lang::Vi) => {
                format!(
                    "Chữ số thứ năm và thứ sáu của số định danh ({yy:02}) cho biết năm sinh \
                     {encoded_year}, nhưng ngày sinh bạn khai là năm {declared_year}."
                )
            }
            (IdNumberProblem::BirthYearMismatch { yy, encoded_year, declared_year }, Lang::En) => {
                format!(
                    "The fifth and sixth digits of the ID number ({yy:02}) encode birth year \
                     {encoded_year}, but the declared date of birth is in {declared_year}."
                )
            }
            (IdNumberProblem::BirthDateInFuture { declared }, Lang::Vi) => {
                format!("Ngày sinh bạn khai ({}) là một ngày trong tương lai.", dd_mm_yyyy(*declared))
            }
            (IdNumberProblem::BirthDateInFuture { declared }, Lang::En) => {
                format!("The declared date of birth ({}) is in the future.", dd_mm_yyyy(*declared))
            }
        }
    }
}

/// Checks that `number` is a 12-digit ID number consistent with the declared birth date and
/// sex. Whitespace anywhere is ignored (people copy it in groups: `087 084 000999`).
///
/// Every disagreeing part is reported, so the person can fix them all at once. A format
/// problem (not 12 ASCII digits) is reported alone: the other parts cannot be read then.
/// A consistent number is *not* proven to exist or to be the person's.
pub fn check_consistency(
    number: &str,
    birth_date: time::Date,
    sex: Sex,
    today: time::Date,
) -> Result<NationalId, Vec<IdNumberProblem>> {
    let digits = strip_whitespace(number);
    if let Err(problem) = check_format(&digits) {
        return Err(vec![problem]);
    }
    // From here on `digits` is exactly 12 ASCII digits, so byte indexing is safe.
    let d = digits.as_bytes();
    let digit = |i: usize| d[i] - b'0';

    let mut problems = Vec::new();

    let code = &digits[0..3];
    if !is_registered_abroad(code) && province_name(code).is_none() {
        problems.push(IdNumberProblem::UnknownProvince { code: code.to_owned() });
    }

    let g = digit(3);
    let declared_year = birth_date.year();
    let encoded_century_start = century_range(g).0;
    if declared_year.div_euclid(100) * 100 != encoded_century_start {
        problems.push(IdNumberProblem::CenturyMismatch { digit: g, declared_year });
    }

    let encoded_sex = if g % 2 == 0 { Sex::Male } else { Sex::Female };
    if encoded_sex != sex {
        problems.push(IdNumberProblem::SexMismatch { digit: g, encoded: encoded_sex, declared: sex });
    }

    let yy = digit(4) * 10 + digit(5);
    if i32::from(yy) != declared_year.rem_euclid(100) {
        problems.push(IdNumberProblem::BirthYearMismatch {
            yy,
            encoded_year: encoded_century_start + i32::from(yy),
            declared_year,
        });
    }

    // A declared date of birth in the future could still agree with every digit (G=2, YY=99),
    // so it needs its own check.
    if birth_date > today {
        problems.push(IdNumberProblem::BirthDateInFuture { declared: birth_date });
    }

    if problems.is_empty() { Ok(NationalId(digits)) } else { Err(problems) }
}

fn strip_whitespace(number: &str) -> String {
    number.chars().filter(|c| !c.is_whitespace()).collect()
}

fn check_format(digits: &str) -> Result<(), IdNumberProblem> {
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IdNumberProblem::NotDigits);
    }
    match digits.len() {
        12 => Ok(()),
        9 => Err(IdNumberProblem::OldCmndNumber),
        n => Err(IdNumberProblem::WrongLength { digits: n }),
    }
}

/// First and last year of the century that `G` encodes: 0/1 → 1900–1999, 2/3 → 2000–2099 …
fn century_range(g: u8) -> (i32, i32) {
    let from = 1900 + 100 * i32::from(g / 2);
    (from, from + 99)
}

fn is_registered_abroad(code: &str) -> bool {
    code.parse::<u16>().is_ok_and(|n| n >= 100)
}

fn dd_mm_yyyy(date: time::Date) -> String {
    format!("{:02}/{:02}/{:04}", date.day(), u8::from(date.month()), date.year())
}

/// The province (before the 2025 merger) where a birth with this `PPP` code was registered.
/// `None` for unknown codes and for codes of 100 or more (registered abroad).
pub fn province_name(code: &str) -> Option<&'static str> {
    PROVINCES.binary_search_by(|(c, _)| (*c).cmp(code)).ok().map(|i| PROVINCES[i].1)
}

/// Keeps the first 4 and last 2 digits of a 12-digit number: `079012345656` → `0790******56`.
/// Anything shorter is fully masked (keeping 6 of 9 CMND digits would reveal too much).
/// Whitespace is dropped first, as in [`check_consistency`].
pub fn mask(number: &str) -> String {
    let chars: Vec<char> = strip_whitespace(number).chars().collect();
    let n = chars.len();
    if n < 12 {
        return "*".repeat(n);
    }
    chars.iter().enumerate().map(|(i, c)| if i < 4 || i >= n - 2 { *c } else { '*' }).collect()
}

/// The Ministry of Public Security's `PPP` codes for the 63 provinces (as in shared/VIETNAM.md),
/// sorted by code for `binary_search`. Bắc Giang is 024 (some public lists wrongly say 023).
const PROVINCES: [(&str, &str); 63] = [
    ("001", "Hà Nội"),
    ("002", "Hà Giang"),
    ("004", "Cao Bằng"),
    ("006", "Bắc Kạn"),
    ("008", "Tuyên Quang"),
    ("010", "Lào Cai"),
    ("011", "Điện Biên"),
    ("012", "Lai Châu"),
    ("014", "Sơn La"),
    ("015", "Yên Bái"),
    ("017", "Hòa Bình"),
    ("019", "Thái Nguyên"),
    ("020", "Lạng Sơn"),
    ("022", "Quảng Ninh"),
    ("024", "Bắc Giang"),
    ("025", "Phú Thọ"),
    ("026", "Vĩnh Phúc"),
    ("027", "Bắc Ninh"),
    ("030", "Hải Dương"),
    ("031", "Hải Phòng"),
    ("033", "Hưng Yên"),
    ("034", "Thái Bình"),
    ("035", "Hà Nam"),
    ("036", "Nam Định"),
    ("037", "Ninh Bình"),
    ("038", "Thanh Hóa"),
    ("040", "Nghệ An"),
    ("042", "Hà Tĩnh"),
    ("044", "Quảng Bình"),
    ("045", "Quảng Trị"),
    ("046", "Thừa Thiên Huế"),
    ("048", "Đà Nẵng"),
    ("049", "Quảng Nam"),
    ("051", "Quảng Ngãi"),
    ("052", "Bình Định"),
    ("054", "Phú Yên"),
    ("056", "Khánh Hòa"),
    ("058", "Ninh Thuận"),
    ("060", "Bình Thuận"),
    ("062", "Kon Tum"),
    ("064", "Gia Lai"),
    ("066", "Đắk Lắk"),
    ("067", "Đắk Nông"),
    ("068", "Lâm Đồng"),
    ("070", "Bình Phước"),
    ("072", "Tây Ninh"),
    ("074", "Bình Dương"),
    ("075", "Đồng Nai"),
    ("077", "Bà Rịa - Vũng Tàu"),
    ("079", "TP Hồ Chí Minh"),
    ("080", "Long An"),
    ("082", "Tiền Giang"),
    ("083", "Bến Tre"),
    ("084", "Trà Vinh"),
    ("086", "Vĩnh Long"),
    ("087", "Đồng Tháp"),
    ("089", "An Giang"),
    ("091", "Kiên Giang"),
    ("092", "Cần Thơ"),
    ("093", "Hậu Giang"),
    ("094", "Sóc Trăng"),
    ("095", "Bạc Liêu"),
    ("096", "Cà Mau"),
];

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::IdNumberProblem as P;
    use super::*;
    use time::macros::date;

    const TODAY: time::Date = date!(2026 - 03 - 15);

    #[test]
    fn consistent_numbers() {
        let cases = [
            // VIETNAM.md examples.
            ("087084000999", date!(1984 - 07 - 01), Sex::Male),
            ("020093001656", date!(1993 - 01 - 31), Sex::Male),
            // Female: odd G.
            ("001184012345", date!(1984 - 02 - 29), Sex::Female),
            // Born in the 2000s: G = 2 (male) / 3 (female).
            ("079205000001", date!(2005 - 12 - 31), Sex::Male),
            ("024310123456", date!(2010 - 06 - 15), Sex::Female),
            // Registered abroad: codes of 100 or more are accepted.
            ("101090123456", date!(1990 - 05 - 05), Sex::Male),
            // Spaces are ignored.
            (" 087 084 000999 ", date!(1984 - 07 - 01), Sex::Male),
            // Born today.
            ("001226000001", TODAY, Sex::Male),
        ];
        for (number, born, sex) in cases {
            let id = check_consistency(number, born, sex, TODAY).unwrap_or_else(|p| panic!("{number}: {p:?}"));
            assert_eq!(id.as_str(), number.replace(' ', ""));
        }
    }

    #[test]
    fn each_mismatch_alone_and_together() {
        let cases: Vec<(&str, time::Date, Sex, Vec<P>)> = vec![
            (
                "087084000999",
                date!(1984 - 07 - 01),
                Sex::Female,
                vec![P::SexMismatch { digit: 0, encoded: Sex::Male, declared: Sex::Female }],
            ),
            (
                "087084000999",
                date!(1985 - 07 - 01),
                Sex::Male,
                vec![P::BirthYearMismatch { yy: 84, encoded_year: 1984, declared_year: 1985 }],
            ),
            (
                "087284000999",
                date!(1984 - 07 - 01),
                Sex::Male,
                vec![P::CenturyMismatch { digit: 2, declared_year: 1984 }],
            ),
            ("003084000999", date!(1984 - 07 - 01), Sex::Male, vec![P::UnknownProvince { code: "003".to_owned() }]),
            (
                "087026000999",
                date!(2026 - 07 - 01),
                Sex::Male,
                vec![
                    P::CenturyMismatch { digit: 0, declared_year: 2026 },
                    P::BirthDateInFuture { declared: date!(2026 - 07 - 01) },
                ],
            ),
            // Everything wrong at once: all reported, in digit order.
            (
                "023307000999",
                date!(1985 - 07 - 01),
                Sex::Male,
                vec![
                    P::UnknownProvince { code: "023".to_owned() },
                    P::CenturyMismatch { digit: 3, declared_year: 1985 },
                    P::SexMismatch { digit: 3, encoded: Sex::Female, declared: Sex::Male },
                    P::BirthYearMismatch { yy: 7, encoded_year: 2007, declared_year: 1985 },
                ],
            ),
        ];
        for (number, born, sex, expected) in cases {
            let problems = check_consistency(number, born, sex, TODAY).unwrap_err();
            assert_eq!(problems, expected, "{number}");
        }
    }

    #[test]
    fn format_problems_are_reported_alone() {
        let born = date!(1984 - 07 - 01);
        let cases = [
            ("08708400099", P::WrongLength { digits: 11 }),
            ("0870840009991", P::WrongLength { digits: 13 }),
            ("", P::WrongLength { digits: 0 }),
            ("   ", P::WrongLength { digits: 0 }),
            ("08708400099A", P::NotDigits),
            ("087-084-000-999", P::NotDigits),
            ("０８７０８４０００９９９", P::NotDigits), // full-width digits
            ("123456789", P::OldCmndNumber),
        ];
        for (number, expected) in cases {
            assert_eq!(check_consistency(number, born, Sex::Male, TODAY).unwrap_err(), vec![expected], "{number:?}");
        }
    }

    #[test]
    fn messages_name_the_part_and_what_it_encodes() {
        let p = P::BirthYearMismatch { yy: 84, encoded_year: 1984, declared_year: 1985 };
        assert_eq!(
            p.message(Lang::Vi),
            "Chữ số thứ năm và thứ sáu của số định danh (84) cho biết năm sinh 1984, nhưng \
             ngày sinh bạn khai là năm 1985."
        );
        assert_eq!(
            p.message(Lang::En),
            "The fifth and sixth digits of the ID number (84) encode birth year 1984, but the \
             declared date of birth is in 1985."
        );
        let p = P::SexMismatch { digit: 1, encoded: Sex::Female, declared: Sex::Male };
        assert!(p.message(Lang::Vi).contains("giới tính nữ"));
        assert!(p.message(Lang::Vi).contains("bạn khai là nam"));
        let p = P::CenturyMismatch { digit: 2, declared_year: 1985 };
        assert!(p.message(Lang::Vi).contains("2000–2099"));
        assert!(p.message(Lang::En).contains("2000–2099"));
        let p = P::BirthDateInFuture { declared: date!(2030 - 01 - 02) };
        assert!(p.message(Lang::Vi).contains("02/01/2030"));
        assert!(P::OldCmndNumber.message(Lang::Vi).contains("CMND"));
        assert!(P::WrongLength { digits: 11 }.message(Lang::Vi).contains("12 chữ số"));
    }

    #[test]
    fn messages_never_say_valid() {
        let all = [
            P::WrongLength { digits: 0 },
            P::WrongLength { digits: 11 },
            P::NotDigits,
            P::OldCmndNumber,
            P::UnknownProvince { code: "003".to_owned() },
            P::CenturyMismatch { digit: 4, declared_year: 1990 },
            P::SexMismatch { digit: 0, encoded: Sex::Male, declared: Sex::Female },
            P::BirthYearMismatch { yy: 1, encoded_year: 2001, declared_year: 2002 },
            P::BirthDateInFuture { declared: date!(2030 - 01 - 02) },
        ];
        for p in all {
            for lang in [Lang::Vi, Lang::En] {
                let m = p.message(lang);
                assert!(!m.is_empty());
                assert!(!m.to_lowercase().contains("hợp lệ"), "{m}");
                assert!(!m.to_lowercase().contains("valid"), "{m}");
            }
            assert!(!p.to_string().contains("valid"));
        }
    }

    #[test]
    fn province_table() {
        assert_eq!(province_name("024"), Some("Bắc Giang"));
        assert_eq!(province_name("023"), None);
        assert_eq!(province_name("087"), Some("Đồng Tháp"));
        assert_eq!(province_name("020"), Some("Lạng Sơn"));
        assert_eq!(province_name("079"), Some("TP Hồ Chí Minh"));
        assert_eq!(province_name("046"), Some("Thừa Thiên Huế"));
        assert_eq!(province_name("101"), None);
        assert_eq!(province_name("1"), None);
        // Sorted and unique, or binary_search silently misses codes.
        assert!(PROVINCES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(PROVINCES.iter().all(|(c, _)| c.len() == 3 && c.parse::<u16>().unwrap() < 100));
    }

    #[test]
    fn masking() {
        assert_eq!(mask("079012345656"), "0790******56");
        assert_eq!(mask("0790 1234 5656"), "0790******56");
        assert_eq!(mask("123456789"), "*********");
        assert_eq!(mask("12"), "**");
        assert_eq!(mask(""), "");
        let id = check_consistency("087084000999", date!(1984 - 07 - 01), Sex::Male, TODAY).unwrap();
        assert_eq!(id.masked(), "0870******99");
        let debug = format!("{id:?}");
        assert!(debug.contains("0870******99"));
        assert!(!debug.contains("087084000999"));
    }

    #[test]
    fn sex_parsing_and_serde() {
        assert_eq!("male".parse::<Sex>(), Ok(Sex::Male));
        assert_eq!(" Female ".parse::<Sex>(), Ok(Sex::Female));
        assert_eq!("nam".parse::<Sex>(), Err(ParseSexError));
        assert_eq!(Sex::Female.as_str(), "female");
        // serde uses the same spellings as as_str; checked without a JSON dependency.
        use serde::de::IntoDeserializer;
        use serde::de::value::{Error, StrDeserializer};
        let de: StrDeserializer<'_, Error> = "female".into_deserializer();
        assert_eq!(<Sex as serde::Deserialize>::deserialize(de), Ok(Sex::Female));
    }
}
