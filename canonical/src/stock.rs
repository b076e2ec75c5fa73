//! The stock-push arithmetic behind the promise **never oversell** (DESIGN.md): the quantity a
//! channel may show is what the ERP has available, minus a safety buffer, minus the units of
//! orders already pulled from the marketplaces but not yet booked in the ERP. Only changes are
//! pushed, and the same comparison serves the reconcile pass, which compares what a channel
//! shows with what it should show.
//!
//! - [`Buffer`]: a margin kept back, in units (`"5"`) or percent (`"10%"`).
//! - [`BufferRules`]: a tenant's buffers; the most specific level wins.
//! - [`pushable`]: the quantity one SKU may show, never negative.
//! - [`stock_delta`]: the updates to send to one channel, given what it shows now.
//!
//! No I/O: the flows load available stock, unreflected order units, rules and last pushed values
//! from the ERP and Postgres, call [`stock_delta`], push the result and record it.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{Sku, StockUpdate};

/// A safety margin kept back from what is pushed, so that sales the product has not heard of yet
/// (a shop counter, a slow ERP, another channel) do not turn into oversold orders.
///
/// Serialized as `{"kind": "units", "value": 5}` or `{"kind": "percent", "value": "12.5"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Buffer {
    /// A fixed number of units kept back, whatever the stock.
    Units(u32),
    /// A share of the available stock kept back, rounded up to whole units. [`Buffer::parse`]
    /// accepts only more than 0 and at most 100; a value outside that range built directly is
    /// treated as 0 when not positive, and keeps back more than everything when above 100.
    Percent(Decimal),
}

/// Why a buffer text was refused: names the text and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "buffer {input:?} is not valid: {problem} (write whole units like \"5\", or a percent above 0 \
     and at most 100 like \"10%\" or \"12.5%\")"
)]
pub struct BufferError {
    /// The text as it was given.
    pub input: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl Buffer {
    /// Parses a buffer as a tenant writes it: `"5"` (units) or `"10%"` (percent, more than 0 and
    /// at most 100, decimals allowed like `"12.5%"`). Surrounding spaces are ignored. Anything
    /// else is refused with an error naming the text, so a typo in a setting never silently
    /// becomes "no buffer".
    pub fn parse(text: &str) -> Result<Buffer, BufferError> {
        let fail = |problem| BufferError {
            input: text.to_owned(),
            problem,
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(fail("it is empty"));
        }
        if trimmed.starts_with('-') {
            return Err(fail("a buffer cannot be negative"));
        }
        if let Some(number) = trimmed.strip_suffix('%') {
            let number = number.trim_end();
            let digits = number.bytes().filter(u8::is_ascii_digit).count();
            let dots = number.bytes().filter(|&b| b == b'.').count();
            if digits == 0 || dots > 1 || digits + dots != number.len() {
                return Err(fail("the percent is not a number"));
            }
            let percent = Decimal::from_str(number)
                .map_err(|_| fail("the percent is not a number"))?
                .normalize();
            if percent <= Decimal::ZERO || percent > Decimal::ONE_HUNDRED {
                return Err(fail("a percent must be more than 0 and at most 100"));
            }
            return Ok(Buffer::Percent(percent));
        }
        if !trimmed.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail(if trimmed.contains('.') {
                "units must be a whole number"
            } else {
                "it is not a number"
            }));
        }
        trimmed
            .parse::<u32>()
            .map(Buffer::Units)
            .map_err(|_| fail("it is more than 4294967295 units"))
    }

    /// Units kept back from `available`: `Units(n)` keeps `n`, `Percent(p)` keeps
    /// `ceil(available × p / 100)`, rounded **up** so a percent buffer never keeps back less
    /// than asked (10 % of 15 keeps 2). Computed exactly in integers; never negative, and
    /// saturates at `u32::MAX`.
    pub fn units_of(&self, available: u32) -> u32 {
        match *self {
            Buffer::Units(n) => n,
            Buffer::Percent(p) => {
                // p = mantissa / 10^scale, so available × p / 100 =
                // available × mantissa / 10^(scale + 2). The mantissa is below 2^96 and
                // available below 2^32, so the product fits in a u128; 10^(28 + 2) does too.
                let Ok(mantissa) = u128::try_from(p.mantissa()) else {
                    return 0; // negative: keeps nothing back
                };
                let Some(divisor) = 10u128.checked_pow(p.scale() + 2) else {
                    return 0; // unreachable for a valid Decimal (scale <= 28)
                };
                match u128::from(available).checked_mul(mantissa) {
                    Some(product) => u32::try_from(product.div_ceil(divisor)).unwrap_or(u32::MAX),
                    None => u32::MAX,
                }
            }
        }
    }
}

impl FromStr for Buffer {
    type Err = BufferError;

    /// Same as [`Buffer::parse`], for configuration loaders.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Buffer::parse(s)
    }
}

impl fmt::Display for Buffer {
    /// `"5"` or `"12.5%"`: the form [`Buffer::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Buffer::Units(n) => write!(f, "{n}"),
            Buffer::Percent(p) => write!(f, "{}%", p.normalize()),
        }
    }
}

/// The buffers of one tenant. A merchant sets a default, then narrows it where a channel is
/// riskier (slow order pulls) or a SKU sells fast; so the most specific level wins:
/// channel+SKU, then SKU, then channel, then tenant, else no buffer (`Units(0)`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BufferRules {
    /// The tenant's default buffer.
    pub tenant: Option<Buffer>,
    /// Per channel (marketplace name, e.g. `cdon`).
    pub channels: HashMap<String, Buffer>,
    /// Per SKU, on every channel.
    pub skus: HashMap<Sku, Buffer>,
    /// Per SKU on one channel: `(channel, sku)`.
    pub channel_skus: HashMap<(String, Sku), Buffer>,
}

impl BufferRules {
    /// The buffer that applies to `sku` on `channel`. Does not allocate: the channel+SKU map is
    /// searched by borrowed key.
    pub fn buffer_for(&self, channel: &str, sku: &Sku) -> Buffer {
        if !self.channel_skus.is_empty()
            && let Some(b) = self.channel_skus.get(&(channel, sku) as &dyn ChannelSkuKey)
        {
            return *b;
        }
        self.skus
            .get(sku)
            .or_else(|| self.channels.get(channel))
            .or(self.tenant.as_ref())
            .copied()
            .unwrap_or(Buffer::Units(0))
    }

    /// True when the tenant has no buffer at any level, so everything available is pushed.
    pub fn is_empty(&self) -> bool {
        self.tenant.is_none()
            && self.channels.is_empty()
            && self.skus.is_empty()
            && self.channel_skus.is_empty()
    }
}

/// A `(channel, sku)` key seen through borrowed parts, so `HashMap<(String, Sku), _>` can be
/// searched with `(&str, &Sku)` without building an owned key. Hashes exactly like the tuple
/// `(String, Sku)` does: the channel as a `str`, then the SKU.
trait ChannelSkuKey {
    fn channel(&self) -> &str;
    fn sku(&self) -> &Sku;
}

impl ChannelSkuKey for (String, Sku) {
    fn channel(&self) -> &str {
        &self.0
    }
    fn sku(&self) -> &Sku {
        &self.1
    }
}

impl ChannelSkuKey for (&str, &Sku) {
    fn channel(&self) -> &str {
        self.0
    }
    fn sku(&self) -> &Sku {
        self.1
    }
}

impl<'a> Borrow<dyn ChannelSkuKey + 'a> for (String, Sku) {
    fn borrow(&self) -> &(dyn ChannelSkuKey + 'a) {
        self
    }
}

impl Hash for dyn ChannelSkuKey + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Same sequence as `<(String, Sku) as Hash>::hash`: `String` hashes as its `str`.
        self.channel().hash(state);
        self.sku().hash(state);
    }
}

impl PartialEq for dyn ChannelSkuKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.channel() == other.channel() && self.sku() == other.sku()
    }
}

impl Eq for dyn ChannelSkuKey + '_ {}

/// What the stock flow knows about one SKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StockInput {
    /// What the ERP (or the product-held stock) says is available; may be negative when the ERP
    /// is oversold.
    pub available: i64,
    /// Units of orders already pulled but not yet reflected in `available`.
    pub unreflected: u32,
}

/// The quantity to show on a channel: `max(0, available − buffer − unreflected)`. The percent
/// buffer applies to `max(available, 0)` clamped to `u32`. Never negative, whatever the inputs
/// (an oversold ERP, more unreflected units than stock, a buffer larger than the stock): a
/// channel shows 0, never a negative or wrapped-around quantity.
pub fn pushable(input: StockInput, buffer: Buffer) -> u32 {
    let base = u32::try_from(input.available.max(0)).unwrap_or(u32::MAX);
    let kept = buffer.units_of(base);
    // i128: i64::MIN minus two u32s cannot overflow.
    let quantity = i128::from(input.available) - i128::from(kept) - i128::from(input.unreflected);
    u32::try_from(quantity.max(0)).unwrap_or(u32::MAX)
}

/// The updates to send to `channel`.
///
/// - Every SKU in `inputs` whose [`pushable`] quantity differs from `shown` (what was last
///   pushed, or what the channel shows in a reconcile pass), including SKUs never pushed (absent
///   from `shown`), even at 0, since the channel's own value is then unknown.
/// - Every SKU in `shown` that no longer appears in `inputs` (it left the ERP), at quantity 0,
///   unless it is already 0: a vanished SKU is zeroed once, not on every pass.
///
/// SKUs whose quantity equals `shown` produce nothing, so a pass over 100,000 SKUs sends only
/// what changed. The output is sorted by SKU so batches and logs are deterministic.
pub fn stock_delta(
    channel: &str,
    rules: &BufferRules,
    inputs: &HashMap<Sku, StockInput>,
    shown: &HashMap<Sku, u32>,
) -> Vec<StockUpdate> {
    let buffers = ChannelBuffers::new(rules, channel);
    let mut changed: Vec<(&Sku, u32)> = Vec::new();
    // Non-zero `shown` entries whose SKU is still in `inputs`.
    let mut still_there = 0usize;
    for (sku, input) in inputs {
        let quantity = pushable(*input, buffers.get(sku));
        let before = shown.get(sku);
        if before != Some(&quantity) {
            changed.push((sku, quantity));
        }
        if before.is_some_and(|&q| q != 0) {
            still_there += 1;
        }
    }
    // A vanished SKU is a non-zero `shown` entry not met above. Counting the non-zero entries
    // reads the values only (no key hashing or comparing), so the second pass of lookups is
    // skipped in the usual case where no SKU left the ERP.
    if shown.values().filter(|&&q| q != 0).count() != still_there {
        for (sku, &quantity) in shown {
            if quantity != 0 && !inputs.contains_key(sku) {
                changed.push((sku, 0));
            }
        }
    }
    // The two loops yield disjoint SKUs, so there are no duplicates to remove.
    changed.sort_unstable_by(|a, b| a.0.cmp(b.0));
    changed
        .into_iter()
        .map(|(sku, quantity)| StockUpdate {
            sku: sku.clone(),
            quantity,
        })
        .collect()
}

/// [`BufferRules`] narrowed to one channel, once per [`stock_delta`] call: the channel+SKU
/// buffers of other channels are dropped and the channel-or-tenant fallback is resolved, so the
/// per-SKU lookup is at most two hash probes, none when the tenant has no SKU-level buffers.
/// Agrees with [`BufferRules::buffer_for`] (checked by the property tests).
#[derive(Debug)]
struct ChannelBuffers<'a> {
    channel_skus: HashMap<&'a Sku, Buffer>,
    skus: &'a HashMap<Sku, Buffer>,
    fallback: Buffer,
}

impl<'a> ChannelBuffers<'a> {
    fn new(rules: &'a BufferRules, channel: &str) -> Self {
        ChannelBuffers {
            channel_skus: rules
                .channel_skus
                .iter()
                .filter(|((c, _), _)| c == channel)
                .map(|((_, sku), b)| (sku, *b))
                .collect(),
            skus: &rules.skus,
            fallback: rules
                .channels
                .get(channel)
                .or(rules.tenant.as_ref())
                .copied()
                .unwrap_or(Buffer::Units(0)),
        }
    }

    fn get(&self, sku: &Sku) -> Buffer {
        if !self.channel_skus.is_empty()
            && let Some(b) = self.channel_skus.get(sku)
        {
            return *b;
        }
        if !self.skus.is_empty()
            && let Some(b) = self.skus.get(sku)
        {
            return *b;
        }
        self.fallback
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    fn sku(s: &str) -> Sku {
        Sku::new(s).unwrap()
    }

    fn input(available: i64, unreflected: u32) -> StockInput {
        StockInput {
            available,
            unreflected,
        }
    }

    #[test]
    fn parses_units_and_percent() {
        assert_eq!(Buffer::parse("5"), Ok(Buffer::Units(5)));
        assert_eq!(Buffer::parse("0"), Ok(Buffer::Units(0)));
        assert_eq!(Buffer::parse(" 7 "), Ok(Buffer::Units(7)));
        assert_eq!(Buffer::parse("10%"), Ok(Buffer::Percent(dec!(10))));
        assert_eq!(Buffer::parse("12.5%"), Ok(Buffer::Percent(dec!(12.5))));
        assert_eq!(Buffer::parse("100%"), Ok(Buffer::Percent(dec!(100))));
        assert_eq!(Buffer::parse("0.5 %"), Ok(Buffer::Percent(dec!(0.5))));
        assert_eq!("3".parse::<Buffer>(), Ok(Buffer::Units(3)));
    }

    #[test]
    fn parse_errors_name_the_text_and_the_rule() {
        for (text, problem) in [
            ("-3", "cannot be negative"),
            ("-3%", "cannot be negative"),
            ("abc", "not a number"),
            ("0%", "more than 0 and at most 100"),
            ("0.0%", "more than 0 and at most 100"),
            ("101%", "more than 0 and at most 100"),
            ("100.01%", "more than 0 and at most 100"),
            ("", "empty"),
            ("  ", "empty"),
            ("%", "not a number"),
            ("5.5", "whole number"),
            ("1e3%", "not a number"),
            ("1.2.3%", "not a number"),
            ("5%%", "not a number"),
            ("+5", "not a number"),
            ("4294967296", "more than 4294967295 units"),
        ] {
            let err = Buffer::parse(text).unwrap_err();
            assert_eq!(err.input, text);
            let msg = err.to_string();
            assert!(msg.contains(&format!("{text:?}")), "{msg}");
            assert!(msg.contains(problem), "{text:?}: {msg}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["5", "0", "10%", "12.5%", "100%", "0.001%"] {
            let b = Buffer::parse(text).unwrap();
            assert_eq!(b.to_string(), text);
            assert_eq!(Buffer::parse(&b.to_string()), Ok(b));
        }
        // Trailing zeros are dropped, the value is kept.
        assert_eq!(Buffer::parse("12.50%").unwrap().to_string(), "12.5%");
        assert_eq!(Buffer::Percent(dec!(10.00)).to_string(), "10%");
    }

    #[test]
    fn serde_form_is_tagged() {
        let units = serde_json::to_value(Buffer::Units(5)).unwrap();
        assert_eq!(units, serde_json::json!({"kind": "units", "value": 5}));
        let percent = serde_json::to_value(Buffer::Percent(dec!(12.5))).unwrap();
        assert_eq!(
            percent,
            serde_json::json!({"kind": "percent", "value": "12.5"})
        );
        let back: Buffer = serde_json::from_value(percent).unwrap();
        assert_eq!(back, Buffer::Percent(dec!(12.5)));
    }

    #[test]
    fn units_of_units_and_percent() {
        assert_eq!(Buffer::Units(3).units_of(0), 3);
        assert_eq!(Buffer::Units(3).units_of(100), 3);
        assert_eq!(Buffer::Units(0).units_of(100), 0);
        // Percent rounds up.
        assert_eq!(Buffer::Percent(dec!(10)).units_of(15), 2);
        assert_eq!(Buffer::Percent(dec!(10)).units_of(10), 1);
        assert_eq!(Buffer::Percent(dec!(10)).units_of(11), 2);
        assert_eq!(Buffer::Percent(dec!(10)).units_of(0), 0);
        assert_eq!(Buffer::Percent(dec!(12.5)).units_of(8), 1);
        assert_eq!(Buffer::Percent(dec!(12.5)).units_of(9), 2);
        assert_eq!(Buffer::Percent(dec!(0.001)).units_of(1), 1);
        assert_eq!(Buffer::Percent(dec!(100)).units_of(37), 37);
        assert_eq!(Buffer::Percent(dec!(100)).units_of(u32::MAX), u32::MAX);
        // Out of the parse range, built directly: never negative, saturates.
        assert_eq!(Buffer::Percent(dec!(0)).units_of(50), 0);
        assert_eq!(Buffer::Percent(dec!(-5)).units_of(50), 0);
        assert_eq!(Buffer::Percent(dec!(200)).units_of(50), 100);
        assert_eq!(Buffer::Percent(dec!(200)).units_of(u32::MAX), u32::MAX);
        assert_eq!(Buffer::Percent(Decimal::MAX).units_of(u32::MAX), u32::MAX);
        assert_eq!(Buffer::Percent(Decimal::MAX).units_of(1), u32::MAX);
    }

    #[test]
    fn pushable_subtracts_buffer_and_unreflected() {
        assert_eq!(pushable(input(20, 3), Buffer::Units(2)), 15);
        assert_eq!(pushable(input(20, 0), Buffer::Units(0)), 20);
        // 10 % of 15 = 1.5 → 2 kept back.
        assert_eq!(pushable(input(15, 0), Buffer::Percent(dec!(10))), 13);
        // The percent applies to available, not to available − unreflected.
        assert_eq!(pushable(input(15, 3), Buffer::Percent(dec!(10))), 10);
        assert_eq!(pushable(input(15, 0), Buffer::Percent(dec!(100))), 0);
    }

    #[test]
    fn pushable_is_never_negative() {
        assert_eq!(pushable(input(-4, 0), Buffer::Units(0)), 0);
        assert_eq!(pushable(input(-4, 0), Buffer::Percent(dec!(10))), 0);
        assert_eq!(pushable(input(5, 9), Buffer::Units(0)), 0);
        assert_eq!(pushable(input(5, 0), Buffer::Units(9)), 0);
        assert_eq!(pushable(input(5, 5), Buffer::Units(0)), 0);
        assert_eq!(
            pushable(input(i64::MIN, u32::MAX), Buffer::Units(u32::MAX)),
            0
        );
        assert_eq!(pushable(input(i64::MAX, 0), Buffer::Units(0)), u32::MAX);
        assert_eq!(
            pushable(input(i64::MAX, 0), Buffer::Percent(dec!(100))),
            u32::MAX
        );
    }

    fn rules_with_all_levels() -> BufferRules {
        BufferRules {
            tenant: Some(Buffer::Units(1)),
            channels: HashMap::from([("cdon".to_owned(), Buffer::Units(2))]),
            skus: HashMap::from([(sku("A"), Buffer::Units(3)), (sku("B"), Buffer::Units(3))]),
            channel_skus: HashMap::from([(("cdon".to_owned(), sku("A")), Buffer::Units(4))]),
        }
    }

    #[test]
    fn most_specific_buffer_wins() {
        let rules = rules_with_all_levels();
        assert_eq!(rules.buffer_for("cdon", &sku("A")), Buffer::Units(4)); // channel+SKU
        assert_eq!(rules.buffer_for("celro", &sku("A")), Buffer::Units(3)); // SKU
        assert_eq!(rules.buffer_for("cdon", &sku("B")), Buffer::Units(3)); // SKU over channel
        assert_eq!(rules.buffer_for("cdon", &sku("C")), Buffer::Units(2)); // channel
        assert_eq!(rules.buffer_for("celro", &sku("C")), Buffer::Units(1)); // tenant
        assert_eq!(
            BufferRules::default().buffer_for("cdon", &sku("C")),
            Buffer::Units(0)
        );
        // The narrowed view agrees.
        for channel in ["cdon", "celro", "other"] {
            let view = ChannelBuffers::new(&rules, channel);
            for s in ["A", "B", "C"] {
                assert_eq!(view.get(&sku(s)), rules.buffer_for(channel, &sku(s)));
            }
        }
    }

    #[test]
    fn borrowed_key_hashes_like_the_owned_tuple() {
        use std::hash::BuildHasher;
        let state = std::collections::hash_map::RandomState::new();
        let owned = ("cdon".to_owned(), sku("A-1"));
        let a = sku("A-1");
        let borrowed: &dyn ChannelSkuKey = &("cdon", &a);
        assert_eq!(state.hash_one(&owned), state.hash_one(borrowed));
        // The split point matters: ("cd", "onA") is not ("cdon", "A").
        let mut map = HashMap::new();
        map.insert(("cd".to_owned(), sku("onA")), Buffer::Units(1));
        let rules = BufferRules {
            channel_skus: map,
            ..BufferRules::default()
        };
        assert_eq!(rules.buffer_for("cdon", &sku("A")), Buffer::Units(0));
        assert_eq!(rules.buffer_for("cd", &sku("onA")), Buffer::Units(1));
    }

    #[test]
    fn is_empty_looks_at_every_level() {
        assert!(BufferRules::default().is_empty());
        assert!(!rules_with_all_levels().is_empty());
        let only_tenant = BufferRules {
            tenant: Some(Buffer::Units(0)),
            ..BufferRules::default()
        };
        assert!(!only_tenant.is_empty());
    }

    #[test]
    fn delta_sends_only_changes() {
        let rules = BufferRules {
            tenant: Some(Buffer::Units(1)),
            ..BufferRules::default()
        };
        let inputs = HashMap::from([
            (sku("SAME"), input(11, 0)),   // 10, shown 10
            (sku("CHANGED"), input(8, 2)), // 5, shown 9
            (sku("NEW"), input(4, 0)),     // 3, never pushed
            (sku("NEW-0"), input(0, 0)),   // 0, never pushed: still sent
            (sku("STILL-0"), input(1, 0)), // 0, shown 0
        ]);
        let shown = HashMap::from([
            (sku("SAME"), 10),
            (sku("CHANGED"), 9),
            (sku("GONE"), 7),   // left the ERP: zeroed
            (sku("GONE-0"), 0), // left, already zeroed: nothing
            (sku("STILL-0"), 0),
        ]);
        let updates = stock_delta("cdon", &rules, &inputs, &shown);
        let got: Vec<(&str, u32)> = updates
            .iter()
            .map(|u| (u.sku.as_str(), u.quantity))
            .collect();
        assert_eq!(got, [("CHANGED", 5), ("GONE", 0), ("NEW", 3), ("NEW-0", 0)]);

        // Applying the updates and running again sends nothing.
        let mut shown = shown;
        for u in updates {
            shown.insert(u.sku, u.quantity);
        }
        assert!(stock_delta("cdon", &rules, &inputs, &shown).is_empty());
    }

    #[test]
    fn delta_uses_the_channels_buffer() {
        let rules = rules_with_all_levels();
        let inputs = HashMap::from([(sku("A"), input(10, 0)), (sku("C"), input(10, 0))]);
        let none = HashMap::new();
        let cdon = stock_delta("cdon", &rules, &inputs, &none);
        let celro = stock_delta("celro", &rules, &inputs, &none);
        let q = |v: &[StockUpdate]| v.iter().map(|u| u.quantity).collect::<Vec<_>>();
        assert_eq!(q(&cdon), [6, 8]);
        assert_eq!(q(&celro), [7, 9]);
    }
}
