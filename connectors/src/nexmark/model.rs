//! The Nexmark events: a [`Person`] registers, an [`Auction`] opens, a [`Bid`] is
//! placed. Field names follow the published schema (`emailAddress` becomes
//! `email_address`, and so on); times are epoch milliseconds and money is in cents.

use serde::{Deserialize, Serialize};

/// A person registered to buy or sell.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Person {
    /// Person id, from 1000 on in creation order.
    pub id: i64,
    /// First and last name, e.g. `"Peter Jones"`.
    pub name: String,
    /// A made-up address such as `"xyz abc@pqrs.com"`.
    pub email_address: String,
    /// Four groups of four digits separated by spaces.
    pub credit_card: String,
    /// One of ten US cities.
    pub city: String,
    /// One of six US state codes (`AZ`, `CA`, `ID`, `OR`, `WA`, `WY`).
    pub state: String,
    /// When the person registered (epoch ms).
    pub date_time: i64,
    /// Padding so that persons average the configured size.
    pub extra: String,
}

/// An item put up for auction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Auction {
    /// Auction id, from 1000 on in creation order.
    pub id: i64,
    /// The item's name.
    pub item_name: String,
    /// The item's description.
    pub description: String,
    /// The opening price (cents).
    pub initial_bid: i64,
    /// The lowest price the seller accepts (cents), above the initial bid.
    pub reserve: i64,
    /// When the auction opened (epoch ms).
    pub date_time: i64,
    /// When the auction closes (epoch ms), after `date_time`.
    pub expires: i64,
    /// The seller's person id.
    pub seller: i64,
    /// Category id, 10 to 14.
    pub category: i64,
    /// Padding so that auctions average the configured size.
    pub extra: String,
}

/// A bid on an auction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Bid {
    /// The auction's id.
    pub auction: i64,
    /// The bidder's person id.
    pub bidder: i64,
    /// The price offered (cents).
    pub price: i64,
    /// Where the bid came from: `Google`, `Facebook`, `Baidu`, `Apple` or
    /// `channel-<n>` with `n` below 10,000.
    pub channel: String,
    /// The page the bid was placed on; fixed per channel.
    pub url: String,
    /// When the bid was placed (epoch ms).
    pub date_time: i64,
    /// Padding so that bids average the configured size.
    pub extra: String,
}

/// One event of the stream. Serialized with the kind as the key:
/// `{"bid": {"auction": 1000, ...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A new person.
    Person(Person),
    /// A new auction.
    Auction(Auction),
    /// A new bid.
    Bid(Bid),
}

/// The kind of an [`Event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// [`Event::Person`].
    Person,
    /// [`Event::Auction`].
    Auction,
    /// [`Event::Bid`].
    Bid,
}

impl EventKind {
    /// The kind's name in lower case: `person`, `auction` or `bid`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Person => "person",
            EventKind::Auction => "auction",
            EventKind::Bid => "bid",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Event {
    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Person(_) => EventKind::Person,
            Event::Auction(_) => EventKind::Auction,
            Event::Bid(_) => EventKind::Bid,
        }
    }

    /// The event time (epoch ms): the person's, auction's or bid's `date_time`.
    pub fn date_time(&self) -> i64 {
        match self {
            Event::Person(p) => p.date_time,
            Event::Auction(a) => a.date_time,
            Event::Bid(b) => b.date_time,
        }
    }

    /// The person, if this is one.
    pub fn as_person(&self) -> Option<&Person> {
        match self {
            Event::Person(p) => Some(p),
            _ => None,
        }
    }

    /// The auction, if this is one.
    pub fn as_auction(&self) -> Option<&Auction> {
        match self {
            Event::Auction(a) => Some(a),
            _ => None,
        }
    }

    /// The bid, if this is one.
    pub fn as_bid(&self) -> Option<&Bid> {
        match self {
            Event::Bid(b) => Some(b),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_their_kind_as_the_key() {
        let bid = Event::Bid(Bid {
            auction: 1000,
            bidder: 1001,
            price: 42,
            channel: "Google".into(),
            url: "https://www.nexmark.com/a/b/c/item.htm?query=1".into(),
            date_time: 7,
            extra: String::new(),
        });
        let json = serde_json::to_string(&bid).unwrap();
        assert!(
            json.starts_with(r#"{"bid":{"auction":1000,"bidder":1001,"price":42,"#),
            "{json}"
        );
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, bid);
        assert_eq!(back.kind(), EventKind::Bid);
        assert_eq!(back.date_time(), 7);
        assert_eq!(EventKind::Auction.to_string(), "auction");
    }
}
