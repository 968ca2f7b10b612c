import ipaddr from 'ipaddr.js';
import { boundedMemo } from '../memo.js';

/**
 * The one place that decides whether a TCP peer is inside a set of CIDRs (for example the trusted
 * reverse proxies allowed to set identity headers). Only the socket's own address is considered:
 * `X-Forwarded-For` and similar headers are never read here.
 */

/** Unwraps IPv4-mapped IPv6 (`::ffff:10.0.0.1` → `10.0.0.1`) so one CIDR list covers both socket families. */
export function normalizePeerAddress(address: string | undefined): string {
  return address ? normalized(address) : '';
}

/** Peers repeat (a proxy, a load balancer, keep-alive connections): each address is parsed once, not per request. */
const normalized = boundedMemo(normalize, 1024);

function normalize(address: string): string {
  try {
    const parsed = ipaddr.parse(address);
    if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
      return (parsed as ipaddr.IPv6).toIPv4Address().toString();
    }
    return parsed.toString();
  } catch {
    return address;
  }
}

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Parses one CIDR or bare address; throws an Error whose message says what is wrong. */
export function parseCidr(text: string): Range {
  const value = text.trim();
  try {
    if (value.includes('/')) {
      const [address, bits] = ipaddr.parseCIDR(value);
      return [unwrapMapped(address), address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress() ? bits - 96 : bits];
    }
    const address = unwrapMapped(ipaddr.parse(value));
    return [address, address.kind() === 'ipv4' ? 32 : 128];
  } catch {
    throw new Error(`"${text}" is not a valid IP address or CIDR range (expected e.g. "10.0.3.0/24" or "::1/128")`);
  }
}

function unwrapMapped(address: ipaddr.IPv4 | ipaddr.IPv6): ipaddr.IPv4 | ipaddr.IPv6 {
  if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress()) {
    return (address as ipaddr.IPv6).toIPv4Address();
  }
  return address;
}

/**
 * Compiles a CIDR list once into a predicate. An empty list matches nothing (fail closed).
 * Unparseable peer addresses never match.
 */
export function compileCidrMatcher(cidrs: readonly string[]): (address: string | undefined) => boolean {
  const ranges = cidrs.map(parseCidr);
  if (ranges.length === 0) return () => false;
  return (address) => {
    if (!address) return false;
    let parsed: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      parsed = unwrapMapped(ipaddr.parse(address));
    } catch {
      return false;
    }
    for (const [range, bits] of ranges) {
      if (range.kind() === parsed.kind() && parsed.match(range as never, bits)) return true;
    }
    return false;
  };
}

/** True for 127.0.0.0/8, ::1 and their mapped forms. */
export function isLoopbackAddress(address: string): boolean {
  try {
    return unwrapMapped(ipaddr.parse(address)).range() === 'loopback';
  } catch {
    return address === 'localhost';
  }
}

/**
 * True only for globally routable unicast addresses: loopback, private (RFC 1918, ULA), link-local,
 * CGNAT, multicast, reserved and unspecified ranges are all refused. Used before the gateway
 * fetches a URL a client supplied (Client ID Metadata Documents), against SSRF.
 */
export function isPublicAddress(address: string): boolean {
  try {
    const parsed = unwrapMapped(ipaddr.parse(address));
    return parsed.range() === 'unicast';
  } catch {
    return false;
  }
}
