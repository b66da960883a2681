/**
 * Bandwidth limits of one attachment, `<ingress>[/<egress>]` in tc's words: ingress is traffic
 * into the guest, egress traffic out of it. Each side is `<rate>[:<burst>]`, or `-` for no limit:
 * `10mbit`, `10mbit/2mbit`, `-/512kbit:16kb`. Canonical text (what the store keeps and sameSpec
 * compares) spells each rate in the largest exact unit and leaves the default burst out.
 */
import { UsageError } from '../util/errors.js';
import { printable } from './validate.js';

/** One direction's limit: bits per second, and the bucket's size in bytes (null: the default). */
export interface Limit {
  rate: number;
  burst: number | null;
}

export interface Rates {
  ingress: Limit | null;
  egress: Limit | null;
}

/** tc's rate units (tc(8), RATES): a bare number is bits per second. */
const RATE_UNITS: Record<string, number> = {
  '': 1,
  bit: 1,
  kbit: 1e3,
  mbit: 1e6,
  gbit: 1e9,
  tbit: 1e12,
  kibit: 1024,
  mibit: 1024 ** 2,
  gibit: 1024 ** 3,
  tibit: 1024 ** 4,
  bps: 8,
  kbps: 8e3,
  mbps: 8e6,
  gbps: 8e9,
  tbps: 8e12,
  kibps: 8 * 1024,
  mibps: 8 * 1024 ** 2,
  gibps: 8 * 1024 ** 3,
  tibps: 8 * 1024 ** 4,
};

/** tc's size units (tc(8), SIZES): a bare number is bytes; k, m, g are powers of 1024. */
const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  kbit: 1024 / 8,
  mbit: 1024 ** 2 / 8,
  gbit: 1024 ** 3 / 8,
};

export const MIN_RATE = 8_000;
export const MAX_RATE = 100e9;
/** A bucket holds at least a full frame (a smaller one never lets one through) and at most 1 GiB. */
export const MIN_BURST = 1600;
export const MAX_BURST = 1024 ** 3;
/** tc keeps a bucket's size as the time it takes at the rate, in microseconds in 32 bits. */
const MAX_BURST_SECONDS = 4000;

function scaled(text: string, units: Record<string, number>, what: string, example: string): number {
  const m = /^(\d+(?:\.\d+)?)([a-z]*)$/i.exec(text);
  const unit = m ? units[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined)
    throw new UsageError(`${what} "${printable(text)}" must be a number with one of tc's units, e.g. ${example}`);
  return Math.round(Number(m[1]) * unit);
}

function checkLimit(text: string, side: string): Limit | null {
  if (text === '-') return null;
  const [rateText, burstText, extra] = text.split(':');
  if (extra !== undefined) throw new UsageError(`${side} rate "${printable(text)}" has more than one ':'`);
  const rate = scaled(rateText!, RATE_UNITS, `${side} rate`, '10mbit');
  if (rate < MIN_RATE || rate > MAX_RATE)
    throw new UsageError(`${side} rate "${printable(rateText!)}" must be from 8kbit to 100gbit`);
  if (burstText === undefined) return { rate, burst: null };
  const burst = scaled(burstText, SIZE_UNITS, `${side} burst`, '32kb');
  if (burst < MIN_BURST || burst > MAX_BURST)
    throw new UsageError(`${side} burst "${printable(burstText)}" must be from 1600 bytes to 1gb`);
  if ((burst * 8) / rate > MAX_BURST_SECONDS)
    throw new UsageError(
      `${side} burst ${burstText} takes over ${MAX_BURST_SECONDS} s at ${rateText}; give a smaller one`,
    );
  return { rate, burst };
}

/** `<ingress>[/<egress>]`, checked; at least one side limited. */
export function parseRates(text: string): Rates {
  const [inText, egText, extra] = text.split('/');
  if (extra !== undefined || !inText)
    throw new UsageError(
      `rate "${printable(text)}" must be <ingress>[/<egress>], e.g. 10mbit or 10mbit/2mbit or -/2mbit`,
    );
  const rates = {
    ingress: checkLimit(inText, 'ingress'),
    egress: egText === undefined ? null : checkLimit(egText, 'egress'),
  };
  if (!rates.ingress && !rates.egress) throw new UsageError(`rate "${printable(text)}" limits neither direction`);
  return rates;
}

function largest(n: number, units: [string, number][]): string {
  const [word, unit] = units.find(([, u]) => n % u === 0)!;
  return `${n / unit}${word}`;
}

const RATE_WORDS: [string, number][] = [
  ['gbit', 1e9],
  ['mbit', 1e6],
  ['kbit', 1e3],
  ['bit', 1],
];
const SIZE_WORDS: [string, number][] = [
  ['mb', 1024 ** 2],
  ['kb', 1024],
  ['b', 1],
];

export const formatRate = (bits: number) => largest(bits, RATE_WORDS);
export const formatSize = (bytes: number) => largest(bytes, SIZE_WORDS);

function formatLimit(l: Limit | null): string {
  if (!l) return '-';
  return `${formatRate(l.rate)}${l.burst === null ? '' : `:${formatSize(l.burst)}`}`;
}

export function formatRates(r: Rates): string {
  return r.egress ? `${formatLimit(r.ingress)}/${formatLimit(r.egress)}` : formatLimit(r.ingress);
}

/** The bucket: as given, else 10 ms at the rate (at least a full frame). */
export function burstOf(l: Limit): number {
  return l.burst ?? Math.max(MIN_BURST, Math.ceil(l.rate / 800));
}

/**
 * The CNI bandwidth capability (runtimeConfig.bandwidth, as the reference bandwidth plugin takes
 * it): rates in bits per second, bursts in bits; a rate needs its burst and a burst its rate.
 */
export interface CniBandwidth {
  ingressRate?: number;
  ingressBurst?: number;
  egressRate?: number;
  egressBurst?: number;
}

function cniLimit(rate: unknown, burst: unknown, side: string): string {
  const given = (v: unknown) => v !== undefined && v !== null && v !== 0;
  if (!given(rate) && !given(burst)) return '-';
  for (const [v, name] of [
    [rate, 'Rate'],
    [burst, 'Burst'],
  ] as const) {
    if (!Number.isSafeInteger(v) || (v as number) <= 0)
      throw new UsageError(
        `bandwidth ${side}${name} must be a positive whole number with ${side}${name === 'Rate' ? 'Burst' : 'Rate'}`,
      );
  }
  return `${rate as number}bit:${Math.floor((burst as number) / 8)}b`;
}

/** The capability's values as rate text for parseRates, or null when they limit nothing. */
export function ratesFromCni(bw: CniBandwidth): string | null {
  const text = `${cniLimit(bw.ingressRate, bw.ingressBurst, 'ingress')}/${cniLimit(bw.egressRate, bw.egressBurst, 'egress')}`;
  return text === '-/-' ? null : text;
}

/** Rates as the CNI bandwidth capability carries them (the netavark plugin's -o rate= goes that way). */
export function cniBandwidthOf(r: Rates): CniBandwidth {
  const bw: CniBandwidth = {};
  if (r.ingress) Object.assign(bw, { ingressRate: r.ingress.rate, ingressBurst: burstOf(r.ingress) * 8 });
  if (r.egress) Object.assign(bw, { egressRate: r.egress.rate, egressBurst: burstOf(r.egress) * 8 });
  return bw;
}
