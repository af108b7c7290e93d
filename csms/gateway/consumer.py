from channels.generic.websocket import AsyncWebsocketConsumer


class ChargerConsumer(AsyncWebsocketConsumer):
    pass
