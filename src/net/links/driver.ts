/**
 * A link driver makes one kind of guest interface (veth, macvlan, ipvlan, vlan, phys, dummy: one file
 * each beside this one). The operations above never switch on the kind: they ask the
 * driver that serves the host interface to plan, create, remove, check and describe the link.
 */
import type { AttachmentPlan, AttachSpec, LinkKind } from '../../model/attachment.js';
import type { StepLog } from '../../util/log.js';
import type { IpWords } from '../rtnetlink/ip-words.js';
import type { HostLinkInfo } from '../link-state/sysfs.js';

/** What tells a guest link from another of the same name, recorded when it is made (identity.ts). */
export interface LinkIdentity {
  /**
   * Its ifindex in the guest, which a rename keeps; null: found by its host end (a veth), or a
   * record of an older version.
   */
  linkIndex: number | null;
  /** A moved NIC's permanent MAC (IFLA_PERM_ADDRESS), which no guest can change; null for any other link. */
  linkPerm: string | null;
}

export const NO_IDENTITY: LinkIdentity = { linkIndex: null, linkPerm: null };

/** What names an attachment's link: its kind, host interface, host link and guest name. */
export type LinkNames = Pick<AttachmentPlan, 'kind' | 'hostIf' | 'hostLink' | 'ifname'>;

/** What a record knows to find an attachment's link again. */
export type LinkRef = LinkNames & Pick<AttachmentPlan, 'mac'> & LinkIdentity;

/** The parts of a plan the host interface decides. */
export interface LinkDefaults {
  mtu: number;
  /** A MAC the guest interface keeps unless one is given (a moved NIC's own). */
  mac?: string;
  /** Whether the link has a host end to name (a veth's). */
  hostEnd: boolean;
}

export interface LinkDriver {
  readonly kind: LinkKind;
  /** The host interface is a bridge (made if missing); published ports need one. */
  readonly onBridge: boolean;
  /** The host reaches these guests only through a shim of its own on the parent (--host-shim). */
  readonly takesShim: boolean;
  /** Whether this driver makes the spec's link on that host interface (null: no such interface). */
  serves(host: HostLinkInfo | null, spec: AttachSpec): boolean;
  /** The host-decided parts of the plan; throws when the host interface does not fit. */
  plan(host: HostLinkInfo | null, spec: AttachSpec): LinkDefaults;
  /** The kernel steps of create, in iproute2's words. */
  describe(plan: AttachmentPlan, netnsPath: string): IpWords[];
  /**
   * Makes the link, its guest end born inside the guest; a half-made link is removed before the
   * error. Resolves with its identity.
   */
  create(plan: AttachmentPlan, netnsPath: string, log?: StepLog): Promise<LinkIdentity>;
  /**
   * Removes the link wherever it still is, found by its identity; a link already gone is fine.
   * Throws (one line) rather than touch a link that is not ours, or when the guest still holds
   * the link's place. `netnsPath` null: the guest is gone.
   */
  remove(link: LinkRef, netnsPath: string | null, log?: StepLog): Promise<void>;
  /** What is wrong with the host side of a made link, or null when it holds. */
  check(link: LinkNames): string | null;
}
