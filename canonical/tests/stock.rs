//! Stock push: property tests over the public API. Applying a delta to what a channel shows
//! must leave it showing exactly what it should, and nothing sent may exceed what is really
//! there (never oversell).

use std::collections::HashMap;

use canonical::Sku;
use canonical::stock::{Buffer, BufferRules, StockInput, pushable, stock_delta};
use proptest::prelude::*;
use rust_decimal::Decimal;

const CHANNELS: [&str; 2] = ["cdon", "celro"];

/// SKUs from a small pool, so inputs, `shown` and the rules overlap.
fn sku() -> impl Strategy<Value = Sku> {
    (0u8..24).prop_map(|i| Sku::new(format!("SKU-{i}")).unwrap())
}

fn buffer() -> impl Strategy<Value = Buffer> {
    prop_oneof![
        (0u32..40).prop_map(Buffer::Units),
        // 0.1 % to 100 % in steps of 0.1, the range parse accepts.
        (1i64..=1000).prop_map(|t| Buffer::Percent(Decimal::new(t, 1))),
        Just(Buffer::Units(u32::MAX)),
    ]
}

fn channel() -> impl Strategy<Value = String> {
    prop_oneof![Just("cdon".to_owned()), Just("celro".to_owned())]
}

fn rules() -> impl Strategy<Value = BufferRules> {
    (
        proptest::option::of(buffer()),
        proptest::collection::hash_map(channel(), buffer(), 0..2),
        proptest::collection::hash_map(sku(), buffer(), 0..6),
        proptest::collection::hash_map((channel(), sku()), buffer(), 0..6),
    )
        .prop_map(|(tenant, channels, skus, channel_skus)| BufferRules {
            tenant,
            channels,
            skus,
            channel_skus,
        })
}

fn stock_input() -> impl Strategy<Value = StockInput> {
    let available = prop_oneof![8 => -20i64..200, 1 => any::<i64>()];
    let unreflected = prop_oneof![8 => 0u32..30, 1 => any::<u32>()];
    (available, unreflected).prop_map(|(available, unreflected)| StockInput {
        available,
        unreflected,
    })
}

fn shown_quantity() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), 0u32..200, any::<u32>()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn applying_the_delta_shows_what_should_be_shown(
        rules in rules(),
        inputs in proptest::collection::hash_map(sku(), stock_input(), 0..20),
        shown in proptest::collection::hash_map(sku(), shown_quantity(), 0..20),
    ) {
        for channel in CHANNELS {
            let updates = stock_delta(channel, &rules, &inputs, &shown);

            // Sorted by SKU, each SKU at most once.
            prop_assert!(updates.windows(2).all(|w| w[0].sku < w[1].sku), "{updates:?}");

            // What it should show: the pushable quantity of every input, 0 for vanished SKUs.
            let mut expected: HashMap<Sku, u32> =
                shown.keys().map(|s| (s.clone(), 0)).collect();
            for (s, input) in &inputs {
                expected.insert(s.clone(), pushable(*input, rules.buffer_for(channel, s)));
            }

            let mut applied = shown.clone();
            for u in &updates {
                // Only changes are sent.
                prop_assert_ne!(shown.get(&u.sku), Some(&u.quantity), "{:?} sent unchanged", u);
                applied.insert(u.sku.clone(), u.quantity);

                // Never more than is really there.
                let ceiling = inputs.get(&u.sku).map_or(0, |i| {
                    (i128::from(i.available) - i128::from(i.unreflected)).max(0)
                });
                prop_assert!(i128::from(u.quantity) <= ceiling, "{:?} > {}", u, ceiling);
            }
            prop_assert_eq!(&applied, &expected);

            // A second pass over the applied state sends nothing.
            prop_assert_eq!(stock_delta(channel, &rules, &inputs, &applied), vec![]);
        }
    }

    #[test]
    fn buffer_for_follows_the_precedence(rules in rules(), channel in channel(), s in sku()) {
        let expected = rules
            .channel_skus
            .get(&(channel.clone(), s.clone()))
            .or_else(|| rules.skus.get(&s))
            .or_else(|| rules.channels.get(&channel))
            .or(rules.tenant.as_ref())
            .copied()
            .unwrap_or(Buffer::Units(0));
        prop_assert_eq!(rules.buffer_for(&channel, &s), expected);
    }

    #[test]
    fn percent_rounds_up_exactly(tenths in 1i64..=1000, available in any::<u32>()) {
        let p = Decimal::new(tenths, 1);
        let kept = Buffer::Percent(p).units_of(available);
        // Exact reference in integers: ceil(available × tenths / 1000).
        let reference = (u64::from(available) * tenths as u64).div_ceil(1000);
        prop_assert_eq!(u64::from(kept), reference);
        prop_assert!(kept <= available);
    }

    #[test]
    fn pushable_is_bounded(input in stock_input(), b in buffer()) {
        let q = pushable(input, b);
        let ceiling = (i128::from(input.available) - i128::from(input.unreflected)).max(0);
        prop_assert!(i128::from(q) <= ceiling);
    }

    #[test]
    fn parse_reads_back_display(b in buffer()) {
        prop_assert_eq!(Buffer::parse(&b.to_string()), Ok(b));
    }
}
