/**
 * Where the Docker Engine API listens: DOCKER_HOST (unix:// only) or Docker's default. Apart from
 * the client (runtime/docker.ts) so that knowing the path does not load node:http.
 */
export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';

/** The socket a DOCKER_HOST value names (front ends read the variable). */
export function socketOf(dockerHost: string | undefined): string {
  return dockerHost?.startsWith('unix://') ? dockerHost.slice('unix://'.length) : DEFAULT_DOCKER_SOCKET;
}
