/** The router's own answers, exactly as the contract words them. */
import type { FastifyReply } from 'fastify';

const TEXT = 'text/plain; charset=utf-8';

export const STATUS_TEXT = {
  404: 'Not Found',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
} as const;

export function answer(reply: FastifyReply, status: keyof typeof STATUS_TEXT): void {
  reply.code(status).header('content-type', TEXT).send(STATUS_TEXT[status]);
}

export function answerUnavailable(reply: FastifyReply, retryAfter: string): void {
  reply.code(503).header('content-type', TEXT).header('retry-after', retryAfter).send(STATUS_TEXT[503]);
}

export function answerMaintenance(reply: FastifyReply, status: number, message: string): void {
  reply.code(status).header('content-type', TEXT).send(message);
}
