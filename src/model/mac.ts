/** MAC addresses that pipewright makes up: stable ones derived from text, random ones for new links. */
import { createHash, randomBytes } from 'node:crypto';

function format(bytes: Buffer): string {
  return [...bytes.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/**
 * pipework's `U:<text>`: the first 12 hex digits of md5("<text>\n"), with an odd second digit
 * replaced by 0 so the address is unicast. Kept bit-for-bit so a guest keeps its MAC when a
 * pipework command line moves to pipewright.
 */
export function macFromText(text: string): string {
  const hex = createHash('md5').update(`${text}\n`).digest('hex').slice(0, 12);
  const fixed = /[13579bdf]/.test(hex[1]) ? `${hex[0]}0${hex.slice(2)}` : hex;
  return fixed.match(/../g)!.join(':');
}

/** A random locally administered unicast address (02:xx:...), as the kernel itself would pick. */
export function randomMac(): string {
  const bytes = randomBytes(6);
  bytes[0] = (bytes[0] & 0xfe) | 0x02;
  return format(bytes);
}
