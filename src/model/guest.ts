/** What a guest is, by how pipewright finds its network namespace: the store keeps it with each attachment. */
export type GuestKind = 'docker' | 'pid' | 'netns' | 'path' | 'endpoint' | 'cni';
